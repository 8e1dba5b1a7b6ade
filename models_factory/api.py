from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.credits import credit_balance
from core.converters import ID_REGEX
from core.serializers import JobSerializer
from datanets.models import Snapshot
from datanets.selectors import datanet_ids_visible
from models_factory import services
from models_factory.models import Inference, MLModel, ModelVersion, TrainingRun
from models_factory.selectors import ml_models_visible, training_runs_visible, versions_visible


class MLModelSerializer(serializers.ModelSerializer):
    datanet = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    datanet_slug = serializers.CharField(write_only=True)
    builder = serializers.CharField(source="builder.username", read_only=True)

    class Meta:
        model = MLModel
        fields = ["id", "slug", "name", "kind", "datanet", "datanet_slug", "builder", "description", "created_at"]
        read_only_fields = ["id", "slug", "kind", "datanet", "builder", "created_at"]


class ModelVersionSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="ml_model.slug", read_only=True)
    kind = serializers.CharField(source="ml_model.kind", read_only=True)
    snapshot = serializers.SerializerMethodField()
    base_model_id = serializers.CharField(source="base_model_name", read_only=True)

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "model",
            "kind",
            "version",
            "snapshot",
            "snapshot_root",
            "base_model_id",
            "base_model_sha256",
            "method",
            "hyperparameters",
            "seeds",
            "library_versions",
            "code_revision",
            "device",
            "metrics",
            "artifact_size_bytes",
            "deployed",
            "price_credits",
            "created_at",
        ]

    def get_snapshot(self, v: ModelVersion) -> dict:
        return {"id": v.snapshot_id, "datanet": v.snapshot.datanet.slug, "version": v.snapshot.version}


class TrainingRunSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="ml_model.slug", read_only=True)
    job = JobSerializer(read_only=True, allow_null=True)
    version = serializers.SerializerMethodField()
    base_model = serializers.CharField(source="base_model_name", read_only=True)
    steps_per_epoch = serializers.SerializerMethodField(help_text="Training steps per epoch (epoch marks on charts)")

    class Meta:
        model = TrainingRun
        fields = [
            "id",
            "model",
            "snapshot",
            "base_model",
            "method",
            "hyperparameters",
            "step",
            "total_steps",
            "epoch",
            "steps_per_epoch",
            "examples_per_s",
            "eta_s",
            "loss_history",
            "eval_history",
            "phase",
            "job",
            "version",
            "created_at",
        ]

    def get_steps_per_epoch(self, run: TrainingRun) -> float | None:
        # The loop reports epoch = step / steps_per_epoch, so their ratio is exact once a step is done.
        return round(run.step / run.epoch, 6) if run.epoch and run.step else None

    def get_version(self, run: TrainingRun) -> int | None:
        v = getattr(run, "model_version", None)
        return v.id if v else None


class TrainingRunCreateSerializer(serializers.Serializer):
    model = serializers.SlugField()
    snapshot = serializers.IntegerField(help_text="Snapshot id")
    base_model = serializers.CharField(required=False, allow_blank=True, default="")
    method = serializers.CharField(required=False, allow_blank=True, default="")
    hyperparameters = serializers.DictField(required=False, default=dict)


class InferSerializer(serializers.Serializer):
    text = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    prompt = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    max_tokens = serializers.IntegerField(required=False, min_value=1, max_value=1024)
    temperature = serializers.FloatField(required=False, min_value=0.0, max_value=2.0)
    seed = serializers.IntegerField(required=False, min_value=0, max_value=2**32 - 1)


class InferenceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Inference
        fields = [
            "id",
            "version",
            "input",
            "input_hash",
            "output",
            "tokens_in",
            "tokens_out",
            "fee",
            "latency_ms",
            "created_at",
        ]


class MLModelViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    serializer_class = MLModelSerializer
    lookup_field = "slug"
    queryset = MLModel.objects.none()

    def get_queryset(self) -> QuerySet[MLModel]:
        return ml_models_visible(self.request.user)

    def perform_create(self, serializer: MLModelSerializer) -> None:
        data = serializer.validated_data
        serializer.instance = services.model_create(
            builder=self.request.user,
            datanet_slug=data["datanet_slug"],
            name=data["name"],
            description=data.get("description", ""),
        )

    @extend_schema(responses=ModelVersionSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)
    def versions(self, request: Request, slug: str) -> Response:
        versions = versions_visible(request.user).filter(ml_model=self.get_object())
        return Response(ModelVersionSerializer(versions, many=True).data)


class TrainingRunViewSet(mixins.RetrieveModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    throttle_scope = "training"
    serializer_class = TrainingRunSerializer
    queryset = TrainingRun.objects.none()

    def get_queryset(self) -> QuerySet[TrainingRun]:
        return training_runs_visible(self.request.user)

    @extend_schema(request=TrainingRunCreateSerializer, responses={202: TrainingRunSerializer})
    def create(self, request: Request) -> Response:
        if not request.user.is_authenticated:
            raise exceptions.NotAuthenticated("Log in (or send an API token) to train models.")
        s = TrainingRunCreateSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        ml_model = get_object_or_404(ml_models_visible(request.user), slug=s.validated_data["model"])
        snapshot = get_object_or_404(
            Snapshot.objects.select_related("datanet").filter(datanet__in=datanet_ids_visible(request.user)),
            pk=s.validated_data["snapshot"],
        )
        run = services.training_run_create(
            actor=request.user,
            ml_model=ml_model,
            snapshot=snapshot,
            base_model=s.validated_data["base_model"],
            method=s.validated_data["method"],
            hyperparameters=s.validated_data["hyperparameters"],
        )
        return Response(TrainingRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses=TrainingRunSerializer)
    @action(detail=True, methods=["post"], permission_classes=[permissions.IsAuthenticated])
    def cancel(self, request: Request, pk: str) -> Response:
        run = self.get_object()
        services.training_run_cancel(actor=request.user, run=run)
        run.refresh_from_db()
        run.job.refresh_from_db()
        return Response(TrainingRunSerializer(run).data)


class DeploySerializer(serializers.Serializer):
    deployed = serializers.BooleanField()
    price_credits = serializers.IntegerField(required=False, min_value=1)
    confirm = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Deploy a classifier that does not beat the majority class on its validation split anyway "
        "(without it such a deploy is refused with code below_majority_baseline).",
    )


class ModelVersionViewSet(mixins.RetrieveModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    lookup_value_regex = ID_REGEX  # an id too long for the database is a 404, not an overflow
    """Registered versions. ``POST /api/models/{id}/infer`` runs a deployed version with an API key."""

    serializer_class = ModelVersionSerializer
    queryset = ModelVersion.objects.none()

    def get_queryset(self) -> QuerySet[ModelVersion]:
        qs = versions_visible(self.request.user)
        if self.request.query_params.get("deployed") in {"1", "true"}:
            qs = qs.filter(deployed=True)
        return qs

    @extend_schema(request=DeploySerializer, responses=ModelVersionSerializer)
    @action(detail=True, methods=["post"], permission_classes=[permissions.IsAuthenticated])
    def deploy(self, request: Request, pk: str) -> Response:
        s = DeploySerializer(data=request.data)
        s.is_valid(raise_exception=True)
        version = services.version_deploy(actor=request.user, version=self.get_object(), **s.validated_data)
        return Response(ModelVersionSerializer(version).data)

    @extend_schema(request=InferSerializer, responses=InferenceSerializer)
    @action(detail=True, methods=["post"], permission_classes=[permissions.IsAuthenticated])
    def infer(self, request: Request, pk: str) -> Response:
        s = InferSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        inference = services.infer(consumer=request.user, version_id=int(pk), payload=dict(s.validated_data))
        body = InferenceSerializer(inference).data
        body["balance"] = credit_balance(user=request.user)
        body.update(getattr(inference, "extra_fields", {}))
        return Response(body)


class CreditsView(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses=inline_serializer("CreditBalance", {"balance": serializers.IntegerField()}))
    def get(self, request: Request) -> Response:
        return Response({"balance": credit_balance(user=request.user)})
