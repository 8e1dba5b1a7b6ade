"""REST API for Datanets. Every action calls the same service the HTML pages call."""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.conf import settings
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from core.converters import ID_REGEX
from core.errors import Forbidden, NotFound, TooLarge, UserError
from datanets import selectors, services
from datanets.models import Appeal, Contribution, Datanet, Record, Snapshot, Upload
from datanets.serializers import (
    AppealFileSerializer,
    AppealSerializer,
    AppealVoteSerializer,
    ContributionSerializer,
    DatanetSerializer,
    PasteSerializer,
    RecordSerializer,
    RowErrorSerializer,
    SnapshotExportSerializer,
    SnapshotPublishSerializer,
    SnapshotSerializer,
    UploadSerializer,
    UploadStartSerializer,
    VoteSerializer,
)


class ContributionCreatedSerializer(ContributionSerializer):
    """A contribution just sent: 202 when its ingestion job was queued, 200 when the same file was already here."""

    duplicate_file = serializers.BooleanField(help_text="True when this exact file was already contributed.")
    message = serializers.CharField()

    class Meta(ContributionSerializer.Meta):
        fields = [*ContributionSerializer.Meta.fields, "duplicate_file", "message"]


CONTRIBUTION_CREATED = {202: ContributionCreatedSerializer, 200: ContributionCreatedSerializer}
REVIEW_QUEUE_PAGE = inline_serializer(
    "ReviewQueuePage",
    {
        "results": RecordSerializer(many=True),
        "next_after": serializers.IntegerField(allow_null=True, help_text="Pass as `after` for the next page."),
    },
)
DATANET_STATS = inline_serializer(
    "DatanetStats",
    {
        "counts": serializers.DictField(child=serializers.IntegerField()),
        "curators": serializers.ListField(child=serializers.DictField()),
        "contributors": serializers.ListField(child=serializers.DictField()),
    },
)


class UploadStartedSerializer(UploadSerializer):
    chunk_size = serializers.IntegerField(help_text="Bytes per PUT chunk.")

    class Meta(UploadSerializer.Meta):
        fields = [*UploadSerializer.Meta.fields, "chunk_size"]


def _contribution_response(result: services.ContributionResult) -> Response:
    body = ContributionSerializer(result.contribution).data
    body["duplicate_file"] = not result.created
    body["message"] = result.message
    return Response(body, status=status.HTTP_202_ACCEPTED if result.created else status.HTTP_200_OK)


class DatanetViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = DatanetSerializer
    lookup_field = "slug"

    def get_queryset(self) -> QuerySet[Datanet]:
        if self.action == "list":
            return selectors.datanets_visible(self.request.user).order_by("-created_at")
        # Actions on one Datanet must not pay for the list's counts over every record (seconds at 1M records).
        return Datanet.objects.select_related("owner").filter(pk__in=selectors.datanet_ids_visible(self.request.user))

    def get_serializer_context(self) -> dict:
        return {**super().get_serializer_context(), "with_counts": self.action == "retrieve"}

    def perform_create(self, serializer: DatanetSerializer) -> None:
        data = dict(serializer.validated_data)
        curators = data.pop("curators", [])
        serializer.instance = services.datanet_create(owner=self.request.user, curators=curators, **data)

    def perform_update(self, serializer: DatanetSerializer) -> None:
        data = dict(serializer.validated_data)
        curators = data.pop("curators", None)
        data.pop("slug", None)
        datanet = services.datanet_update(actor=self.request.user, datanet=serializer.instance, **data)
        if curators is not None:
            current = set(selectors.curators_of(datanet))
            for user in set(curators) - current:
                services.curator_set(actor=self.request.user, datanet=datanet, user=user, curator=True)
            for user in current - set(curators):
                services.curator_set(actor=self.request.user, datanet=datanet, user=user, curator=False)
        serializer.instance = datanet

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=Record.Status.values),
            OpenApiParameter("label", str),
            OpenApiParameter("contributor", str),
        ],
        responses=RecordSerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def records(self, request: Request, slug: str) -> Response:
        datanet = self.get_object()
        qs = (
            selectors.records_visible(request.user)
            .filter(datanet=datanet)
            .select_related("contributor", "duplicate_of__duplicate_of")
            .order_by("id")
        )
        for param, field in (("status", "status"), ("label", "label"), ("contributor", "contributor__username")):
            if value := request.query_params.get(param):
                qs = qs.filter(**{field: value})
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(RecordSerializer(page, many=True, context={"request": request}).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("after", int, description="Return records with a larger id (keyset pagination)."),
            OpenApiParameter("limit", int),
            OpenApiParameter("label", str),
            OpenApiParameter("contributor", str),
        ],
        responses=REVIEW_QUEUE_PAGE,
    )
    @action(detail=True, methods=["get"], url_path="review-queue", permission_classes=[permissions.IsAuthenticated])
    def review_queue(self, request: Request, slug: str) -> Response:
        datanet = self.get_object()
        if not selectors.is_curator(request.user, datanet):
            raise Forbidden("Only this Datanet's curators have a review queue.")
        try:
            after = int(request.query_params.get("after", 0))
            limit = min(max(int(request.query_params.get("limit", 50)), 1), 200)
        except ValueError:
            raise UserError("'after' and 'limit' must be whole numbers.") from None
        records = selectors.review_queue(
            datanet=datanet,
            curator=request.user,
            after_id=after,
            limit=limit,
            label=request.query_params.get("label", ""),
            contributor=request.query_params.get("contributor", ""),
        )
        data = RecordSerializer(records, many=True, context={"request": request}).data
        return Response({"results": data, "next_after": records[-1].pk if records else None})

    @extend_schema(
        methods=["GET"],
        parameters=[OpenApiParameter("mine", str, description="1 or true: only your own contributions.")],
        responses=ContributionSerializer(many=True),
    )
    @extend_schema(
        methods=["POST"],
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}, "column_map": {"type": "string"}},
                "required": ["file"],
            },
            "application/json": PasteSerializer,
        },
        responses=CONTRIBUTION_CREATED,
    )
    @action(
        detail=True,
        methods=["get", "post"],
        parser_classes=[MultiPartParser, FormParser, JSONParser],
        permission_classes=[permissions.IsAuthenticatedOrReadOnly],
    )
    def contributions(self, request: Request, slug: str) -> Response:
        datanet = self.get_object()
        if request.method == "GET":
            qs = Contribution.objects.filter(datanet=datanet).select_related("contributor", "job")
            if mine := request.query_params.get("mine"):
                if mine.lower() in {"1", "true"} and request.user.is_authenticated:
                    qs = qs.filter(contributor=request.user)
            page = self.paginate_queryset(qs)
            return self.get_paginated_response(ContributionSerializer(page, many=True).data)
        upload = request.FILES.get("file")
        if upload is not None:
            import json

            column_map = {}
            if raw_map := request.data.get("column_map"):
                try:
                    column_map = json.loads(raw_map) if isinstance(raw_map, str) else raw_map
                except ValueError:
                    raise UserError('column_map must be JSON, for example {"review": "text"}.') from None
            if upload.size > settings.UPLOAD_MAX_BYTES:
                raise TooLarge(f"The file is {upload.size:,} bytes; the limit is {settings.UPLOAD_MAX_BYTES:,} bytes.")
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "upload"
                with open(path, "wb") as fh:
                    for chunk in upload.chunks():
                        fh.write(chunk)
                result = services.contribution_from_path(
                    user=request.user, datanet=datanet, path=path, filename=upload.name, column_map=column_map
                )
            return _contribution_response(result)
        serializer = PasteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.contribution_from_paste(
            user=request.user,
            datanet=datanet,
            text=serializer.validated_data["text"],
            fmt=serializer.validated_data["format"],
        )
        return _contribution_response(result)

    @extend_schema(request=UploadStartSerializer, responses={201: UploadStartedSerializer})
    @action(detail=True, methods=["post"], permission_classes=[permissions.IsAuthenticated])
    def uploads(self, request: Request, slug: str) -> Response:
        datanet = self.get_object()
        serializer = UploadStartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = services.upload_start(user=request.user, datanet=datanet, **serializer.validated_data)
        body = UploadSerializer(upload).data
        body["chunk_size"] = settings.UPLOAD_CHUNK_BYTES
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(methods=["GET"], responses=SnapshotSerializer(many=True))
    @extend_schema(methods=["POST"], request=SnapshotPublishSerializer, responses={201: SnapshotSerializer})
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    def snapshots(self, request: Request, slug: str) -> Response:
        datanet = self.get_object()
        if request.method == "GET":
            return Response(SnapshotSerializer(datanet.snapshots.all(), many=True).data)
        if not request.user.is_authenticated:
            raise Forbidden("Log in as the Datanet's owner to publish.")
        serializer = SnapshotPublishSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        snapshot = services.snapshot_publish(actor=request.user, datanet=datanet, **serializer.validated_data)
        return Response(SnapshotSerializer(snapshot).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=DATANET_STATS)
    @action(detail=True, methods=["get"])
    def stats(self, request: Request, slug: str) -> Response:
        datanet = self.get_object()
        return Response(
            {
                "counts": selectors.datanet_counts(datanet),
                "agreement": selectors.datanet_agreement(datanet),
                "curators": selectors.curator_stats(datanet),
                "contributors": selectors.contributor_stats(datanet),
            }
        )


class UploadViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Resumable uploads: ``PUT chunk`` with ``Upload-Offset``, then ``POST complete``. ``GET`` says where to resume."""

    serializer_class = UploadSerializer
    permission_classes = [permissions.IsAuthenticated]
    queryset = Upload.objects.none()  # the schema reads the id's type from it

    def get_queryset(self) -> QuerySet[Upload]:
        return Upload.objects.filter(user=self.request.user)

    @extend_schema(
        request={"application/octet-stream": {"type": "string", "format": "binary"}},
        parameters=[OpenApiParameter("Upload-Offset", int, location=OpenApiParameter.HEADER, required=True)],
        responses=UploadSerializer,
    )
    @action(detail=True, methods=["put"], parser_classes=[])
    def chunk(self, request: Request, pk: str) -> Response:
        try:
            offset = int(request.headers.get("Upload-Offset", ""))
        except ValueError:
            raise UserError("Send the chunk's starting byte in the Upload-Offset header.") from None
        data = request._request.body
        if len(data) > settings.UPLOAD_CHUNK_BYTES:
            raise TooLarge(f"Chunks are at most {settings.UPLOAD_CHUNK_BYTES:,} bytes.")
        upload = services.upload_append(user=request.user, upload_id=pk, offset=offset, data=data)
        return Response(UploadSerializer(upload).data)

    @extend_schema(request=None, responses=CONTRIBUTION_CREATED)
    @action(detail=True, methods=["post"])
    def complete(self, request: Request, pk: str) -> Response:
        return _contribution_response(services.upload_complete(user=request.user, upload_id=pk))


class ContributionViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    lookup_value_regex = ID_REGEX  # an id too long for the database is a 404, not an overflow
    serializer_class = ContributionSerializer

    def get_queryset(self) -> QuerySet[Contribution]:
        visible = selectors.datanet_ids_visible(self.request.user)
        return Contribution.objects.filter(datanet__in=visible).select_related("contributor", "job")

    @extend_schema(responses=RowErrorSerializer(many=True))
    @action(detail=True, methods=["get"])
    def errors(self, request: Request, pk: str) -> Response:
        contribution = self.get_object()
        page = self.paginate_queryset(contribution.row_errors.all())
        return self.get_paginated_response(RowErrorSerializer(page, many=True).data)


class RecordViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    lookup_value_regex = ID_REGEX  # an id too long for the database is a 404, not an overflow
    serializer_class = RecordSerializer

    def get_queryset(self) -> QuerySet[Record]:
        return selectors.records_visible(self.request.user).select_related("contributor", "duplicate_of__duplicate_of")

    @extend_schema(methods=["GET"], responses=VoteSerializer(many=True))
    @extend_schema(methods=["POST"], request=VoteSerializer, responses={201: RecordSerializer})
    @action(
        detail=True,
        methods=["get", "post"],
        permission_classes=[permissions.IsAuthenticatedOrReadOnly],
        pagination_class=None,
    )
    def votes(self, request: Request, pk: str) -> Response:
        if request.method == "GET":
            record = self.get_object()
            return Response(VoteSerializer(selectors.votes_visible(request.user, record), many=True).data)
        serializer = VoteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if not selectors.records_visible(request.user).filter(pk=pk).exists():  # 404 alike for private and unknown
            raise NotFound(f"There is no record #{pk}.")
        record = services.vote_cast(
            curator=request.user,
            record_id=int(pk),
            decision=serializer.validated_data["decision"],
            reason=serializer.validated_data.get("reason", ""),
        )
        return Response(RecordSerializer(record, context={"request": request}).data, status=status.HTTP_201_CREATED)


class SnapshotViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    lookup_value_regex = ID_REGEX  # an id too long for the database is a 404, not an overflow
    throttle_scope: str | None = None  # the exports action sets its own
    serializer_class = SnapshotSerializer

    def get_queryset(self) -> QuerySet[Snapshot]:
        visible = selectors.datanet_ids_visible(self.request.user)
        return Snapshot.objects.filter(datanet__in=visible).select_related("datanet", "published_by")

    @extend_schema(methods=["GET"], responses=SnapshotExportSerializer(many=True))
    @extend_schema(
        methods=["POST"],
        request={
            "application/json": {
                "type": "object",
                "properties": {"format": {"enum": ["jsonl", "parquet"]}},
                "required": ["format"],
            }
        },
        responses={202: SnapshotExportSerializer},
    )
    @action(detail=True, methods=["get", "post"], url_path="exports", throttle_scope="exports", pagination_class=None)
    def exports(self, request: Request, pk: str) -> Response:
        snapshot = self.get_object()
        if request.method == "GET":
            return Response(SnapshotExportSerializer(snapshot.exports.select_related("job"), many=True).data)
        if not request.user.is_authenticated:
            raise Forbidden("Log in to request an export.")
        fmt = str(request.data.get("format", ""))
        export = services.snapshot_export_request(actor=request.user, snapshot=snapshot, fmt=fmt)
        return Response(SnapshotExportSerializer(export).data, status=status.HTTP_202_ACCEPTED)


class AppealViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Appeals of decisions (a rejection, a confirmed flag, a penalty). Only an appeal's parties see it: the
    appellant, those who made the decision, the drawn panel, the Datanet's owner, and staff."""

    lookup_value_regex = ID_REGEX
    serializer_class = AppealSerializer
    permission_classes = [permissions.IsAuthenticated]

    def get_queryset(self) -> QuerySet[Appeal]:
        services.appeals_expire()  # a deadline that passed moves the appeal to its owner before anyone reads it
        if self.action == "list" and self.request.query_params.get("to_judge", "").lower() in {"1", "true"}:
            qs = selectors.appeals_to_judge(self.request.user)
        else:
            qs = selectors.appeals_visible(self.request.user)
        if slug := self.request.query_params.get("datanet"):
            qs = qs.filter(datanet__slug=slug)
        return qs.order_by("-created_at")

    @extend_schema(
        parameters=[
            OpenApiParameter("datanet", str),
            OpenApiParameter("to_judge", bool, description="Only open appeals waiting on your vote or decision."),
        ]
    )
    def list(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(request=AppealFileSerializer, responses=AppealSerializer)
    def create(self, request: Request) -> Response:
        serializer = AppealFileSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        appeal = services.appeal_file(appellant=request.user, **serializer.validated_data)
        return Response(AppealSerializer(appeal, context={"request": request}).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=AppealVoteSerializer, responses=AppealSerializer)
    @action(detail=True, methods=["post"])
    def vote(self, request: Request, pk: str) -> Response:
        serializer = AppealVoteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        appeal = services.appeal_vote(voter=request.user, appeal_id=int(pk), **serializer.validated_data)
        return Response(AppealSerializer(appeal, context={"request": request}).data, status=status.HTTP_201_CREATED)
