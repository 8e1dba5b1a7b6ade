"""Rewards API: epochs, allocations, proofs, claim relays. Thin: every write calls one service."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from rest_framework import permissions, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import Forbidden, NotFound
from datanets.models import Datanet
from settlement import anchoring, claims, epochs, proofs, rewards, selectors
from settlement.models import Allocation, Epoch, EpochPool, Settlement


class SettlementSerializer(serializers.ModelSerializer):
    total_cumulative = serializers.CharField()

    class Meta:
        model = Settlement
        fields = [
            "state",
            "chain_id",
            "distributor",
            "root",
            "data_hash",
            "total_cumulative",
            "leaf_count",
            "unlinked_count",
            "nonce",
            "tx_hash",
            "block_number",
            "gas_used",
            "confirmations",
            "attempts",
            "next_retry_at",
            "last_error",
            "alarm",
            "note",
            "confirmed_at",
        ]


class EpochSerializer(serializers.ModelSerializer):
    fees_in = serializers.CharField()
    pools_in = serializers.CharField()
    platform_amount = serializers.CharField()
    carried_over = serializers.CharField()
    settlement = serializers.SerializerMethodField()
    dump_url = serializers.SerializerMethodField()

    class Meta:
        model = Epoch
        fields = [
            "number",
            "status",
            "opened_at",
            "closed_at",
            "settled_at",
            "fees_in",
            "pools_in",
            "platform_amount",
            "carried_over",
            "receipt_count",
            "receipts_root",
            "valuing_versions",
            "settlement",
            "dump_url",
        ]

    def get_settlement(self, epoch: Epoch) -> dict[str, Any] | None:
        settlement = Settlement.objects.filter(epoch=epoch).first()
        return SettlementSerializer(settlement).data if settlement else None

    def get_dump_url(self, epoch: Epoch) -> str | None:
        settlement = Settlement.objects.filter(epoch=epoch).first()
        if settlement is None or not settlement.dump_name:
            return None
        return reverse("settlement:dump", args=[epoch.number])


class AllocationSerializer(serializers.ModelSerializer):
    account = serializers.CharField(source="account.username")
    address = serializers.CharField(source="account.wallet_address")
    amount = serializers.CharField()
    cumulative = serializers.CharField()

    class Meta:
        model = Allocation
        fields = ["account", "address", "amount", "cumulative", "breakdown"]


def _staff(request: Request) -> None:
    if not request.user.is_staff:
        raise Forbidden("Only an admin can close or settle epochs.")


class EpochListView(APIView):
    def get(self, request: Request) -> Response:
        return Response(EpochSerializer(selectors.epochs_with_settlements(), many=True).data)


class EpochDetailView(APIView):
    def get(self, request: Request, number: int) -> Response:
        return Response(EpochSerializer(rewards.epoch_get(number)).data)


class EpochCloseView(APIView):
    permission_classes = [permissions.IsAuthenticated]

    def post(self, request: Request, number: int) -> Response:
        _staff(request)
        return Response(EpochSerializer(epochs.epoch_close(actor=request.user, number=number)).data)


class EpochSettleView(APIView):
    permission_classes = [permissions.IsAuthenticated]

    def post(self, request: Request, number: int) -> Response:
        _staff(request)
        settlement, job = anchoring.settlement_request(actor=request.user, number=number)
        return Response(
            {"job": str(job.id), "job_url": job.get_absolute_url(), "state": settlement.state},
            status=status.HTTP_202_ACCEPTED,
        )


class AllocationListView(APIView):
    def get(self, request: Request, number: int) -> Response:
        epoch = rewards.epoch_get(number)
        rows = Allocation.objects.filter(epoch=epoch).select_related("account").order_by("account__username")
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(AllocationSerializer(page, many=True).data)


class EpochPoolSerializer(serializers.ModelSerializer):
    epoch = serializers.IntegerField(source="epoch.number")
    datanet = serializers.CharField(source="datanet.slug")
    amount = serializers.CharField()
    funded_by = serializers.CharField(source="funded_by.username", default=None)
    carried_from = serializers.IntegerField(source="carried_from.number", default=None)

    class Meta:
        model = EpochPool
        fields = ["id", "epoch", "datanet", "amount", "funded_by", "carried_from", "created_at"]


class PoolFundSerializer(serializers.Serializer):
    datanet = serializers.SlugField(help_text="Slug of one of your Datanets.")
    amount_credits = serializers.IntegerField(
        help_text="Whole credits taken from your balance (1 credit = 10^18 units)."
    )


class EpochPoolListView(APIView):
    """GET: an epoch's pools. POST {datanet, amount_credits}: the Datanet's owner funds the open epoch's pool."""

    permission_classes = [permissions.IsAuthenticatedOrReadOnly]

    def get(self, request: Request, number: int) -> Response:
        epoch = rewards.epoch_get(number)
        pools = EpochPool.objects.filter(epoch=epoch).select_related("epoch", "datanet", "funded_by", "carried_from")
        return Response(EpochPoolSerializer(pools, many=True).data)

    def post(self, request: Request, number: int) -> Response:
        data = PoolFundSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        datanet = Datanet.objects.filter(slug=data.validated_data["datanet"]).first()
        if datanet is None:
            raise NotFound(f"There is no Datanet '{data.validated_data['datanet']}'.")
        pool = rewards.pool_fund(
            actor=request.user,
            datanet=datanet,
            amount_credits=data.validated_data["amount_credits"],
            epoch_number=number,
        )
        return Response(EpochPoolSerializer(pool).data, status=status.HTTP_201_CREATED)


class ProofView(APIView):
    permission_classes = [permissions.AllowAny]

    def get(self, request: Request, number: int, address: str) -> Response:
        return Response(proofs.proof_get(epoch_number=number, address=address))


class ClaimRelayView(APIView):
    permission_classes = [permissions.IsAuthenticated]

    def get(self, request: Request) -> Response:
        state = claims.claim_status(user=request.user)
        return Response(
            {
                **state,
                "claimed": str(state["claimed"]),
                "claimable": str(state["claimable"]),
                "balance": None if state["balance"] is None else str(state["balance"]),
            }
        )

    def post(self, request: Request) -> Response:
        relay = claims.claim_relay(user=request.user)
        return Response(
            {
                "tx_hash": relay.tx_hash,
                "paid": str(relay.paid),
                "epoch": relay.epoch_number,
                "cumulative": str(relay.cumulative),
                "status": relay.status,
            },
            status=status.HTTP_201_CREATED,
        )


class EarningsView(APIView):
    permission_classes = [permissions.IsAuthenticated]

    def get(self, request: Request) -> Response:
        data = selectors.earnings_for(user=request.user, limit=100)
        return Response(
            {
                "cumulative": str(data["cumulative"]),
                "open_epoch_amount": str(data["open_epoch_amount"]),
                "per_epoch": [
                    {**r, "amount": str(r["amount"]), "cumulative": str(r["cumulative"])} for r in data["per_epoch"]
                ],
                "per_datanet": [{**r, "amount": str(r["amount"])} for r in data["per_datanet"]],
                "entries": [
                    {
                        "epoch": e.epoch.number,
                        "kind": e.kind,
                        "amount": str(e.amount),
                        "datanet": e.datanet.slug if e.datanet else None,
                        "receipt": e.receipt_id or None,
                        "memo": e.memo,
                    }
                    for e in data["entries"]
                ],
                "penalties": [
                    {
                        "epoch": p.epoch.number,
                        "datanet": p.datanet.slug,
                        "record": p.record_id,
                        "points": p.points,
                        "reason": p.reason,
                    }
                    for p in data["penalties"]
                ],
            }
        )
