from django.urls import path

from settlement import views

app_name = "settlement"

urlpatterns = [
    path("", views.earnings, name="earnings"),
    path("claim/", views.claim, name="claim"),
    path("claim/proof.json", views.claim_proof, name="claim-proof"),
    path("datanets/<slug:slug>/", views.datanet_rewards, name="datanet"),
    path("datanets/<slug:slug>/pools/", views.datanet_pool_fund, name="datanet-pool-fund"),
    path("epochs/", views.epoch_list, name="epochs"),
    path("epochs/<id:number>/", views.epoch_detail, name="epoch"),
    path("epochs/<id:number>/close/", views.epoch_close, name="epoch-close"),
    path("epochs/<id:number>/accrue/", views.epoch_accrue, name="epoch-accrue"),
    path("epochs/<id:number>/settle/", views.epoch_settle, name="epoch-settle"),
    path("epochs/<id:number>/dump.json", views.epoch_dump, name="dump"),
    path("receipts/<str:receipt_id>/challenge/", views.receipt_challenge, name="receipt-challenge"),
]
