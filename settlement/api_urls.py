"""Settlement API routes, included under /api/ by config/api_urls.py (names live in the 'api' namespace)."""

from django.urls import path

from settlement import api

urlpatterns = [
    path("rewards/epochs/", api.EpochListView.as_view(), name="reward-epochs"),
    path("rewards/epochs/<id:number>/", api.EpochDetailView.as_view(), name="reward-epoch"),
    path("rewards/epochs/<id:number>/close/", api.EpochCloseView.as_view(), name="reward-epoch-close"),
    path("rewards/epochs/<id:number>/settle/", api.EpochSettleView.as_view(), name="reward-epoch-settle"),
    path("rewards/epochs/<id:number>/pools/", api.EpochPoolListView.as_view(), name="reward-epoch-pools"),
    path("rewards/epochs/<id:number>/allocations/", api.AllocationListView.as_view(), name="reward-allocations"),
    path("rewards/proofs/<id:number>/<str:address>/", api.ProofView.as_view(), name="reward-proof"),
    path("rewards/claims/", api.ClaimRelayView.as_view(), name="reward-claims"),
    path("rewards/earnings/", api.EarningsView.as_view(), name="reward-earnings"),
    path("receipts/<str:pk>/challenges/", api.ReceiptChallengeListView.as_view(), name="receipt-challenges"),
    path(
        "receipt-challenges/<id:pk>/resolve/",
        api.ReceiptChallengeResolveView.as_view(),
        name="receipt-challenge-resolve",
    ),
]
