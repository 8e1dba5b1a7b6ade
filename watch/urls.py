from django.urls import path

from watch import views

app_name = "watch"

urlpatterns = [
    path("webhooks/", views.endpoints, name="endpoints"),
    path("webhooks/<id:pk>/", views.endpoint_detail, name="endpoint"),
    path("webhooks/<id:pk>/enable/", views.endpoint_enable, name="endpoint-enable"),
    path("webhooks/<id:pk>/delete/", views.endpoint_delete, name="endpoint-delete"),
    path("explorer/", views.explorer_index, name="explorer"),
    path("explorer/search/", views.explorer_search, name="explorer-search"),
    path("explorer/receipts/<str:pk>/", views.explorer_receipt, name="explorer-receipt"),
]
