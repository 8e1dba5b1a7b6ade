from django.urls import include, path
from rest_framework.routers import DefaultRouter

from accounts import api as accounts_api
from core import api as core_api
from datanets import api as datanets_api
from models_factory import api as models_api

app_name = "api"

router = DefaultRouter()
router.register("datanets", datanets_api.DatanetViewSet, basename="datanet")
router.register("uploads", datanets_api.UploadViewSet, basename="upload")
router.register("contributions", datanets_api.ContributionViewSet, basename="contribution")
router.register("records", datanets_api.RecordViewSet, basename="record")
router.register("snapshots", datanets_api.SnapshotViewSet, basename="snapshot")
router.register("appeals", datanets_api.AppealViewSet, basename="appeal")
router.register("jobs", core_api.JobViewSet, basename="job")
router.register("ml-models", models_api.MLModelViewSet, basename="ml-model")
router.register("training-runs", models_api.TrainingRunViewSet, basename="training-run")
router.register("models", models_api.ModelVersionViewSet, basename="model-version")

urlpatterns = [
    path("me/", accounts_api.MeView.as_view(), name="me"),
    path("tokens/", accounts_api.TokenListView.as_view(), name="tokens"),
    path("tokens/<id:pk>/revoke/", accounts_api.TokenRevokeView.as_view(), name="token-revoke"),
    path("wallet/challenge/", accounts_api.WalletChallengeView.as_view(), name="wallet-challenge"),
    path("wallet/link/", accounts_api.WalletLinkView.as_view(), name="wallet-link"),
    path("credits/", models_api.CreditsView.as_view(), name="credits"),
    path("", include("attribution.api_urls")),
    path("", include("settlement.api_urls")),
    path("", include("watch.api_urls")),
    *router.urls,
]
