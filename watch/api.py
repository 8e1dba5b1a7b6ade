"""Webhook endpoints and their delivery log (owner only), and the public explorer's search."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.converters import ID_REGEX
from core.errors import NotFound
from core.events import EVENT_TYPES
from datanets import selectors as datanet_selectors
from datanets.models import Datanet
from watch import explorer, selectors, webhooks
from watch.models import WebhookEndpoint
from watch.serializers import (
    EventTypeSerializer,
    WebhookDeliverySerializer,
    WebhookEndpointCreatedSerializer,
    WebhookEndpointCreateSerializer,
    WebhookEndpointSerializer,
)


class WebhookEndpointViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Your webhook endpoints. Each delivery is signed in the Standard Webhooks format; the secret is shown once,
    when the endpoint is created. Someone else's endpoint answers like a missing one."""

    lookup_value_regex = ID_REGEX
    serializer_class = WebhookEndpointSerializer
    permission_classes = [permissions.IsAuthenticated]

    def get_queryset(self) -> QuerySet[WebhookEndpoint]:
        return selectors.endpoints_visible(self.request.user)

    @extend_schema(request=WebhookEndpointCreateSerializer, responses={201: WebhookEndpointCreatedSerializer})
    def create(self, request: Request) -> Response:
        serializer = WebhookEndpointCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        slug = data.pop("datanet", "") or ""
        datanet = None
        if slug:
            datanet = Datanet.objects.filter(
                pk__in=datanet_selectors.datanet_ids_visible(request.user), slug=slug
            ).first()
            if datanet is None:  # a private Datanet the user cannot see answers like a missing one
                raise NotFound(f"There is no Datanet {slug!r}.")
        endpoint, secret = webhooks.endpoint_create(actor=request.user, datanet=datanet, **data)
        body = WebhookEndpointCreatedSerializer(endpoint, context={"request": request, "secret": secret}).data
        return Response(body, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: WebhookEndpoint) -> None:
        webhooks.endpoint_delete(actor=self.request.user, endpoint=instance)

    @extend_schema(request=None, responses=WebhookEndpointSerializer)
    @action(detail=True, methods=["post"])
    def enable(self, request: Request, pk: str) -> Response:
        endpoint = webhooks.endpoint_enable(actor=request.user, endpoint=self.get_object())
        return Response(WebhookEndpointSerializer(endpoint).data)

    @extend_schema(
        responses=WebhookDeliverySerializer(many=True),
        parameters=[OpenApiParameter("status", str, description="pending, retrying, succeeded or failed")],
    )
    @action(detail=True, methods=["get"])
    def deliveries(self, request: Request, pk: str) -> Response:
        endpoint = self.get_object()
        qs = selectors.deliveries_visible(request.user).filter(endpoint=endpoint).prefetch_related("attempt_log")
        if state := request.query_params.get("status"):
            qs = qs.filter(status=state)
        page = self.paginate_queryset(qs)
        if page is not None:
            return self.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)
        return Response(WebhookDeliverySerializer(qs[:200], many=True).data)


class EventTypeListView(APIView):
    """The event types an endpoint can subscribe to."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(responses=EventTypeSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(EventTypeSerializer(list(EVENT_TYPES.items()), many=True).data)


class ExplorerSearchView(APIView):
    """Public search over anchors, receipts and snapshot roots of public Datanets, and executed proposals, by id,
    address (an account's, a distributor's) or root. Nothing private is searched."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(parameters=[OpenApiParameter("q", str, required=True)], responses=explorer.SearchResultSerializer)
    def get(self, request: Request) -> Response:
        return Response(explorer.SearchResultSerializer(explorer.search(request.query_params.get("q", ""))).data)


class ExplorerAnchorListView(APIView):
    """Every anchored epoch: root, data hash, transaction, block, the dump and the command that verifies it."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(responses=explorer.AnchorSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(explorer.AnchorSerializer(explorer.anchors(), many=True, context={"request": request}).data)


class ExplorerReceiptView(APIView):
    """A receipt of a public Datanet's model, by id (others answer 404, like a missing one)."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(responses=explorer.PublicReceiptSerializer)
    def get(self, request: Request, pk: str) -> Response:
        return Response(explorer.PublicReceiptSerializer(explorer.receipt_public(pk)).data)


class ExplorerSnapshotListView(APIView):
    """Every snapshot root of the public Datanets, newest first."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(responses=explorer.PublicSnapshotSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(explorer.PublicSnapshotSerializer(explorer.snapshots_public()[:500], many=True).data)


class ExplorerProposalListView(APIView):
    """Executed governance proposals with their tallies (none until governance lands)."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(responses={200: {"type": "array", "items": {"type": "object"}}})
    def get(self, request: Request) -> Response:
        return Response(explorer.proposals_executed())
