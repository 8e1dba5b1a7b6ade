from django.urls import path

from datanets import views

app_name = "datanets"

urlpatterns = [
    path("", views.datanet_list, name="list"),
    path("new/", views.datanet_create, name="create"),
    path("me/records/", views.my_records, name="my_records"),
    path("d/<slug:slug>/", views.datanet_detail, name="detail"),
    path("d/<slug:slug>/edit/", views.datanet_edit, name="edit"),
    path("d/<slug:slug>/upload/", views.upload, name="upload"),
    path("d/<slug:slug>/contributions/<id:pk>/", views.contribution_detail, name="contribution"),
    path("d/<slug:slug>/review/", views.review_queue, name="review"),
    path("d/<slug:slug>/records/<id:pk>/", views.record_detail, name="record"),
    path("d/<slug:slug>/stats/", views.stats, name="stats"),
    path("d/<slug:slug>/appeals/", views.appeal_list, name="appeals"),
    path("d/<slug:slug>/appeals/new/", views.appeal_new, name="appeal_new"),
    path("d/<slug:slug>/appeals/<id:pk>/", views.appeal_detail, name="appeal"),
    path("d/<slug:slug>/publish/", views.snapshot_publish, name="publish"),
    path("d/<slug:slug>/v/<id:version>/", views.snapshot_detail, name="snapshot"),
    path("d/<slug:slug>/v/<id:version>/export/", views.snapshot_export, name="snapshot_export"),
    path("d/<slug:slug>/v/<id:version>/manifest.jsonl", views.snapshot_manifest, name="snapshot_manifest"),
    path("d/<slug:slug>/v/<id:version>/card.json", views.snapshot_card, name="snapshot_card"),
    path("d/<slug:slug>/v/<id:version>/download/<str:fmt>/", views.export_download, name="export-download"),
]
