from django.urls import path

from attribution import api

urlpatterns = [
    path("receipts/<str:pk>/", api.ReceiptView.as_view(), name="receipt-detail"),
    path("models/<id:pk>/attribution/", api.IndexView.as_view(), name="attribution-index"),
    path("records/<id:pk>/credit/", api.RecordCreditView.as_view(), name="record-credit"),
    path("datanets/<slug:slug>/flags/", api.FlagListView.as_view(), name="datanet-flags"),
    path("datanets/<slug:slug>/valuing-version/", api.ValuingVersionView.as_view(), name="datanet-valuing-version"),
    path("flags/<id:pk>/resolve/", api.FlagResolveView.as_view(), name="flag-resolve"),
]
