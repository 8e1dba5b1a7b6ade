from __future__ import annotations

from django.db.models import Count, Sum
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from attribution.indexes import index_build_request
from attribution.models import AttributionIndex, Citation
from attribution.receipts import attribution_status
from attribution.selectors import receipt_visible
from core.errors import Forbidden, NotFound
from core.serializers import JobSerializer
from datanets.selectors import records_visible
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
        return Response({"status": status, "message": message, "index": IndexSerializer(index).data if index else None})

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
