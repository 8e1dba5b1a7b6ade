from django.urls import path

from attribution import views

app_name = "attribution"

urlpatterns = [
    path("receipts/<str:pk>/", views.receipt_detail, name="receipt"),
    path("flags/<slug:slug>/", views.flags, name="flags"),
    path("valuing/<slug:slug>/", views.valuer_designate, name="valuer"),
    path("contributors/<str:username>/", views.contributor, name="contributor"),
]
