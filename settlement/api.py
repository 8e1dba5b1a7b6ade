"""Rewards API: epochs, allocations, proofs, claim relays. Thin: every write calls one service."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from attribution.selectors import receipt_visible
from core.errors import Forbidden, NotFound
from core.pagination import Pages
from datanets.models import Datanet
from datanets.selectors import datanet_ids_visible
from settlement import anchoring, challenges, claims, epochs, proofs, rewards, selectors
from settlement.models import Allocation, Epoch, EpochPool, ReceiptChallenge, Settlement


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

    @extend_schema_field(SettlementSerializer(allow_null=True))
    def get_settlement(self, epoch: Epoch) -> dict[str, Any] | None:
        settlement = Settlement.objects.filter(epoch=epoch).first()
        return SettlementSerializer(settlement).data if settlement else None

    @extend_schema_field(serializers.CharField(allow_null=True))
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


_str = serializers.CharField
AMOUNT_HELP = "Token base units (18 decimals) as a decimal string."
SETTLE_STARTED = inline_serializer("SettlementStarted", {"job": _str(), "job_url": _str(), "state": _str()})
PROOF = inline_serializer(
    "RewardProof",
    {
        "epoch": serializers.IntegerField(),
        "address": _str(),
        "cumulative": _str(help_text=AMOUNT_HELP),
        "proof": serializers.ListField(child=_str()),
        "root": _str(),
        "chain_id": serializers.IntegerField(),
        "distributor": _str(),
        "calldata": _str(help_text="Hex calldata of the distributor's claim()."),
    },
)
CLAIM_STATUS = inline_serializer(
    "ClaimStatus",
    {
        "address": _str(allow_null=True),
        "proof": serializers.DictField(allow_null=True),
        "claimed": _str(help_text=AMOUNT_HELP),
        "claimable": _str(help_text=AMOUNT_HELP),
        "balance": _str(allow_null=True, help_text=AMOUNT_HELP),
        "chain_error": _str(),
    },
)
CLAIM_RELAYED = inline_serializer(
    "ClaimRelayed",
    {
        "tx_hash": _str(),
        "paid": _str(help_text=AMOUNT_HELP),
        "epoch": serializers.IntegerField(),
        "cumulative": _str(help_text=AMOUNT_HELP),
        "status": _str(),
    },
)
EARNINGS = inline_serializer(
    "Earnings",
    {
        "cumulative": _str(help_text=AMOUNT_HELP),
        "open_epoch_amount": _str(help_text=AMOUNT_HELP),
        "per_epoch": serializers.ListField(child=serializers.DictField()),
        "per_datanet": serializers.ListField(child=serializers.DictField()),
        "entries": serializers.ListField(child=serializers.DictField()),
        "penalties": serializers.ListField(child=serializers.DictField()),
    },
)


class EpochListView(APIView):
    @extend_schema(operation_id="rewards_epochs_list", responses=EpochSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(EpochSerializer(selectors.epochs_with_settlements(), many=True).data)


class EpochDetailView(APIView):
    @extend_schema(responses=EpochSerializer)
    def get(self, request: Request, number: int) -> Response:
        return Response(EpochSerializer(rewards.epoch_get(number)).data)


class EpochCloseView(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=None, responses=EpochSerializer)
    def post(self, request: Request, number: int) -> Response:
        _staff(request)
        return Response(EpochSerializer(epochs.epoch_close(actor=request.user, number=number)).data)


class EpochSettleView(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=None, responses={202: SETTLE_STARTED})
    def post(self, request: Request, number: int) -> Response:
        _staff(request)
        settlement, job = anchoring.settlement_request(actor=request.user, number=number)
        return Response(
            {"job": str(job.id), "job_url": job.get_absolute_url(), "state": settlement.state},
            status=status.HTTP_202_ACCEPTED,
        )


class AllocationListView(APIView):
    pagination_class = Pages

    @extend_schema(responses=AllocationSerializer(many=True))
    def get(self, request: Request, number: int) -> Response:
        epoch = rewards.epoch_get(number)
        rows = Allocation.objects.filter(epoch=epoch).select_related("account").order_by("account__username")
        paginator = Pages()
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

    @extend_schema(responses=EpochPoolSerializer(many=True))
    def get(self, request: Request, number: int) -> Response:
        epoch = rewards.epoch_get(number)
        pools = EpochPool.objects.filter(epoch=epoch).select_related("epoch", "datanet", "funded_by", "carried_from")
        return Response(EpochPoolSerializer(pools, many=True).data)

    @extend_schema(request=PoolFundSerializer, responses={201: EpochPoolSerializer})
    def post(self, request: Request, number: int) -> Response:
        data = PoolFundSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        visible = datanet_ids_visible(request.user)  # a private Datanet is missing to outsiders, never "not yours"
        datanet = Datanet.objects.filter(slug=data.validated_data["datanet"], pk__in=visible).first()
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

    @extend_schema(responses=PROOF)
    def get(self, request: Request, number: int, address: str) -> Response:
        return Response(proofs.proof_get(epoch_number=number, address=address))


class ClaimRelayView(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses=CLAIM_STATUS)
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

    @extend_schema(request=None, responses={201: CLAIM_RELAYED})
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

    @extend_schema(responses=EARNINGS)
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


class ReceiptChallengeSerializer(serializers.ModelSerializer):
    challenger = serializers.CharField(source="challenger.username")
    resolved_by = serializers.SerializerMethodField()

    class Meta:
        model = ReceiptChallenge
        fields = [
            "id",
            "receipt_id",
            "challenger",
            "recomputed_id",
            "differences",
            "status",
            "frozen_epoch",
            "settled_epoch",
            "resolution",
            "resolved_by",
            "resolved_at",
            "created_at",
        ]

    def get_resolved_by(self, challenge: ReceiptChallenge) -> str | None:
        return challenge.resolved_by.username if challenge.resolved_by else None


class ReceiptChallengeListView(APIView):
    """GET: the challenges of a receipt. POST: recompute the receipt now; a mismatch freezes its accrual."""

    permission_classes = [permissions.IsAuthenticatedOrReadOnly]
    throttle_scope = "challenges"  # writes only (WriteScopedRateThrottle)

    @extend_schema(responses=ReceiptChallengeSerializer(many=True))
    def get(self, request: Request, pk: str) -> Response:
        receipt = receipt_visible(request.user, pk)
        rows = ReceiptChallenge.objects.filter(receipt_id=receipt.id).select_related("challenger", "resolved_by")
        return Response(ReceiptChallengeSerializer(rows, many=True).data)

    @extend_schema(request=None, responses=ReceiptChallengeSerializer)
    def post(self, request: Request, pk: str) -> Response:
        challenge = challenges.receipt_challenge(actor=request.user, receipt_id=pk)
        return Response(ReceiptChallengeSerializer(challenge).data, status=status.HTTP_201_CREATED)


class ChallengeResolveSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["uphold", "void"])
    reason = serializers.CharField(max_length=2000)


class ReceiptChallengeResolveView(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=ChallengeResolveSerializer, responses=ReceiptChallengeSerializer)
    def post(self, request: Request, pk: int) -> Response:
        serializer = ChallengeResolveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        challenge = challenges.receipt_challenge_resolve(
            actor=request.user, challenge_id=pk, **serializer.validated_data
        )
        return Response(ReceiptChallengeSerializer(challenge).data)
