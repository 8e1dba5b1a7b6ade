from django.urls import path

from models_factory import views

app_name = "models_factory"

urlpatterns = [
    path("", views.model_list, name="list"),
    path("new/", views.model_create, name="create"),
    path("runs/<uuid:pk>/", views.run_detail, name="run"),
    path("runs/<uuid:pk>/cancel/", views.run_cancel, name="run_cancel"),
    path("<slug:slug>/", views.model_detail, name="model"),
    path("<slug:slug>/train/", views.run_create, name="train"),
    path("<slug:slug>/v/<id:version>/", views.version_detail, name="version"),
    path("<slug:slug>/v/<id:version>/deploy/", views.version_deploy, name="deploy"),
    path("<slug:slug>/v/<id:version>/download/", views.version_download, name="download"),
]
