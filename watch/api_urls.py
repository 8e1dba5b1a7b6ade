"""Webhook and explorer API routes, included under /api/ by config/api_urls.py (names in the 'api' namespace)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from watch import api

router = SimpleRouter()
router.register("webhooks", api.WebhookEndpointViewSet, basename="webhook")

urlpatterns = [
    path("webhooks/event-types/", api.EventTypeListView.as_view(), name="webhook-event-types"),
    path("explorer/search/", api.ExplorerSearchView.as_view(), name="explorer-search"),
    path("explorer/anchors/", api.ExplorerAnchorListView.as_view(), name="explorer-anchors"),
    path("explorer/receipts/<str:pk>/", api.ExplorerReceiptView.as_view(), name="explorer-receipt"),
    path("explorer/snapshots/", api.ExplorerSnapshotListView.as_view(), name="explorer-snapshots"),
    path("explorer/proposals/", api.ExplorerProposalListView.as_view(), name="explorer-proposals"),
    *router.urls,
]
