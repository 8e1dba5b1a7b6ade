from __future__ import annotations

from django.db.models import Count, Sum
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import permissions, serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from attribution.indexes import index_build_request
from attribution.models import AttributionIndex, Citation, Flag, RecordValuation, ValuationDesignation
from attribution.receipts import attribution_status
from attribution.selectors import flags_for_curators, receipt_visible, valuing_version
from attribution.valuation import flag_resolve, valuation_designate
from core.errors import Forbidden, NotFound, UserError
from core.serializers import JobSerializer
from datanets.models import Datanet
from datanets.selectors import datanet_ids_visible, is_curator, records_visible
from models_factory.selectors import versions_visible


def receipt_payload(receipt) -> dict:
    return {
        "id": receipt.id,
        "body": receipt.body,
        "created_at": receipt.created_at,
        "explain_url": receipt.get_absolute_url(),
    }


RECEIPT = inline_serializer(
    "Receipt",
    {
        "id": serializers.CharField(help_text="SHA-256 of the receipt body's canonical JSON."),
        "body": serializers.DictField(help_text="The canonical receipt: model version, snapshot root, top-k, shares."),
        "created_at": serializers.DateTimeField(),
        "explain_url": serializers.CharField(),
    },
)


class ReceiptView(APIView):
    permission_classes = [permissions.AllowAny]

    @extend_schema(responses=RECEIPT)
    def get(self, request: Request, pk: str) -> Response:
        return Response(receipt_payload(receipt_visible(request.user, pk)))


class IndexSerializer(serializers.ModelSerializer):
    job = JobSerializer(read_only=True, allow_null=True)

    class Meta:
        model = AttributionIndex
        fields = ["method", "status", "n_records", "params", "bad_records", "error", "built_at", "job"]


class IndexView(APIView):
    permission_classes = [permissions.IsAuthenticatedOrReadOnly]

    @extend_schema(
        responses=inline_serializer(
            "AttributionStatus",
            {
                "status": serializers.CharField(),
                "message": serializers.CharField(),
                "index": IndexSerializer(allow_null=True),
            },
        )
    )
    def get(self, request: Request, pk: int) -> Response:
        version = get_object_or_404(versions_visible(request.user), pk=pk)
        status, message = attribution_status(version)
        index = AttributionIndex.objects.filter(version=version).first()
        valuer, rule = valuing_version(version.ml_model.datanet)
        valuing = valuer is not None and valuer.pk == version.pk
        valuation = {
            "valuing_version": valuing,
            "valued": RecordValuation.objects.filter(version=version).exists(),
            "flagged": RecordValuation.objects.filter(version=version, flagged=True).count(),
            "note": f"This version values its Datanet ({rule}): its flags go to curators and its values split the pool."
            if valuing
            else "Not its Datanet's valuing version: its valuation affects only this version's own receipts.",
        }
        return Response(
            {
                "status": status,
                "message": message,
                "index": IndexSerializer(index).data if index else None,
                "valuation": valuation,
            }
        )

    @extend_schema(request=None, responses={202: IndexSerializer})
    def post(self, request: Request, pk: int) -> Response:
        version = get_object_or_404(versions_visible(request.user), pk=pk)
        if version.ml_model.builder_id != request.user.pk and not request.user.is_staff:
            raise Forbidden("Only the model's builder can rebuild its attribution index.")
        index = index_build_request(version=version, actor=request.user)
        return Response(IndexSerializer(index).data, status=202)


class RecordCreditView(APIView):
    permission_classes = [permissions.AllowAny]

    @extend_schema(
        responses=inline_serializer(
            "RecordCredit",
            {
                "record": serializers.IntegerField(),
                "citations": serializers.IntegerField(),
                "credit_ppm_total": serializers.IntegerField(),
            },
        )
    )
    def get(self, request: Request, pk: int) -> Response:
        if not records_visible(request.user).filter(pk=pk).exists():
            raise NotFound(f"There is no record #{pk}.")
        agg = Citation.objects.filter(record_id=pk).aggregate(n=Count("id"), ppm=Sum("credit_ppm"))
        return Response({"record": pk, "citations": agg["n"], "credit_ppm_total": agg["ppm"] or 0})


# --- Flags and the valuing version -------------------------------------------------------------------------------


class FlagSerializer(serializers.ModelSerializer):
    record = serializers.IntegerField(source="record_id")
    contributor = serializers.CharField(source="record.contributor.username")
    version = serializers.IntegerField(source="version_id")
    model = serializers.CharField(source="version.ml_model.slug")
    model_version = serializers.IntegerField(source="version.version")

    class Meta:
        model = Flag
        fields = [
            "id",
            "record",
            "contributor",
            "reason",
            "summary",
            "severity",
            "evidence",
            "status",
            "version",
            "model",
            "model_version",
            "created_at",
            "updated_at",
        ]


class FlagPagination(PageNumberPagination):
    page_size = 50


def _curated_datanet(request: Request, slug: str) -> Datanet:
    datanet = Datanet.objects.filter(pk__in=datanet_ids_visible(request.user), slug=slug).first()
    if datanet is None:
        raise NotFound(f"There is no Datanet '{slug}'.")
    if not is_curator(request.user, datanet):
        raise Forbidden("Only this Datanet's curators review flagged records.")
    return datanet


class FlagListView(APIView):
    """A Datanet's flags for its curators, most severe first: ``?version=ID&reason=CODE&status=open|confirmed|
    dismissed&page=N`` (status defaults to open)."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        responses=inline_serializer(
            "FlagPage",
            {
                "count": serializers.IntegerField(),
                "next": serializers.URLField(allow_null=True),
                "previous": serializers.URLField(allow_null=True),
                "results": FlagSerializer(many=True),
                "valuing_version": serializers.IntegerField(allow_null=True),
                "valuing_rule": serializers.CharField(),
            },
        )
    )
    def get(self, request: Request, slug: str) -> Response:
        datanet = _curated_datanet(request, slug)
        version = request.query_params.get("version", "")
        reason = request.query_params.get("reason", "")
        status = request.query_params.get("status", Flag.Status.OPEN)
        if version and not version.isdigit():
            raise UserError("version is a model version id (a whole number).")
        if reason and reason not in Flag.Reason.values:
            raise UserError(f"reason is one of {', '.join(Flag.Reason.values)}.")
        if status not in Flag.Status.values:
            raise UserError(f"status is one of {', '.join(Flag.Status.values)}.")
        flags = flags_for_curators(datanet, version_id=int(version) if version else None, reason=reason, status=status)
        valuer, rule = valuing_version(datanet)
        paginator = FlagPagination()
        page = paginator.paginate_queryset(flags, request, view=self)
        response = paginator.get_paginated_response(FlagSerializer(page, many=True).data)
        response.data["valuing_version"] = valuer.pk if valuer else None
        response.data["valuing_rule"] = rule
        return response


class FlagResolveSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["confirm", "dismiss"])
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class FlagResolveView(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=FlagResolveSerializer, responses=FlagSerializer)
    def post(self, request: Request, pk: int) -> Response:
        data = FlagResolveSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        flag = flag_resolve(actor=request.user, flag_id=pk, **data.validated_data)
        return Response(FlagSerializer(flag).data)


class ValuingVersionSerializer(serializers.Serializer):
    version = serializers.IntegerField(required=False, allow_null=True, default=None)
    builders = serializers.ListField(child=serializers.CharField(), required=False, default=list)


class ValuingVersionView(APIView):
    """GET: which version values the Datanet, and why. PUT {version, builders} (the owner): designate it."""

    permission_classes = [permissions.IsAuthenticatedOrReadOnly]

    def _payload(self, datanet: Datanet) -> dict:
        valuer, rule = valuing_version(datanet)
        designation = ValuationDesignation.objects.filter(datanet=datanet).first()
        return {
            "datanet": datanet.slug,
            "valuing_version": valuer.pk if valuer else None,
            "model": valuer.ml_model.slug if valuer else None,
            "model_version": valuer.version if valuer else None,
            "rule": rule,
            "designated_version": designation.version_id if designation else None,
            "builders": sorted(designation.builders.values_list("username", flat=True)) if designation else [],
        }

    @extend_schema(responses={200: dict})
    def get(self, request: Request, slug: str) -> Response:
        datanet = Datanet.objects.filter(pk__in=datanet_ids_visible(request.user), slug=slug).first()
        if datanet is None:
            raise NotFound(f"There is no Datanet '{slug}'.")
        return Response(self._payload(datanet))

    @extend_schema(request=ValuingVersionSerializer, responses={200: dict})
    def put(self, request: Request, slug: str) -> Response:
        datanet = Datanet.objects.filter(pk__in=datanet_ids_visible(request.user), slug=slug).first()
        if datanet is None:
            raise NotFound(f"There is no Datanet '{slug}'.")
        data = ValuingVersionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        valuation_designate(
            actor=request.user,
            datanet=datanet,
            version_id=data.validated_data["version"],
            builders=data.validated_data["builders"],
        )
        return Response(self._payload(datanet))
