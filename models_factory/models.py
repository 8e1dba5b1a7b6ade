from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.urls import reverse

from core.models import Job
from datanets.models import Datanet, Snapshot


def base_model_name(spec: str) -> str:
    """A base model as the API shows it: a packaged name or hub id as given, a server folder by its last part only
    (the server's paths are nobody's business)."""
    if spec.startswith(("/", ".", "~")) or "\\" in spec or spec.count("/") > 1:
        return spec.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return spec


class MLModel(models.Model):
    """A named line of model versions trained on one Datanet."""

    class Kind(models.TextChoices):
        CLASSIFIER = "classifier", "Classifier"
        GENERATIVE = "generative", "Generative (LoRA)"

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=80, unique=True)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    datanet = models.ForeignKey(Datanet, on_delete=models.PROTECT, related_name="ml_models")
    builder = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="ml_models")
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("models_factory:model", args=[self.slug])


class TrainingRun(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    ml_model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="runs")
    snapshot = models.ForeignKey(Snapshot, on_delete=models.PROTECT, related_name="training_runs")
    base_model = models.CharField(max_length=500, help_text="minilm, smollm2, tiny, or a local path.")
    method = models.CharField(max_length=10)
    hyperparameters = models.JSONField(default=dict)
    job = models.OneToOneField(Job, on_delete=models.PROTECT, related_name="training_run")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    epoch = models.FloatField(default=0)
    examples_per_s = models.FloatField(default=0)
    eta_s = models.FloatField(null=True, blank=True)
    loss_history = models.JSONField(default=list, blank=True)
    eval_history = models.JSONField(default=list, blank=True, help_text="[step, validation loss] per evaluation.")
    phase = models.JSONField(
        default=dict,
        blank=True,
        help_text="The phase before or between steps: {name, done, total, unit, rate, eta_s}.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def get_absolute_url(self) -> str:
        return reverse("models_factory:run", args=[self.id])

    @property
    def base_model_name(self) -> str:
        return base_model_name(self.base_model)


class ModelVersion(models.Model):
    """A trained, registered model with its full lineage. Created only when a run finishes cleanly."""

    ml_model = models.ForeignKey(MLModel, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    run = models.OneToOneField(TrainingRun, on_delete=models.PROTECT, related_name="model_version")
    snapshot = models.ForeignKey(Snapshot, on_delete=models.PROTECT, related_name="model_versions")
    snapshot_root = models.CharField(max_length=64)
    base_model_id = models.CharField(max_length=500)
    base_model_sha256 = models.CharField(max_length=64)
    method = models.CharField(max_length=10)
    hyperparameters = models.JSONField(default=dict)
    seeds = models.JSONField(default=dict)
    library_versions = models.JSONField(default=dict)
    code_revision = models.CharField(max_length=64, blank=True)
    device = models.CharField(max_length=40, blank=True)
    metrics = models.JSONField(default=dict)
    artifact_location = models.CharField(max_length=500)
    artifact_size_bytes = models.BigIntegerField(default=0)
    deployed = models.BooleanField(default=False)
    price_credits = models.PositiveBigIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version"]
        constraints = [models.UniqueConstraint(fields=["ml_model", "version"], name="unique_model_version")]

    def __str__(self) -> str:
        return f"{self.ml_model.slug} v{self.version}"

    def get_absolute_url(self) -> str:
        return reverse("models_factory:version", args=[self.ml_model.slug, self.version])

    @property
    def base_model_name(self) -> str:
        return base_model_name(self.base_model_id)


class Inference(models.Model):
    """One paid call of a deployed version: what attribution and rewards build on."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="inferences")
    consumer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="inferences")
    input = models.JSONField()
    input_hash = models.CharField(max_length=64, db_index=True)
    output = models.JSONField()
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    fee = models.PositiveBigIntegerField()
    latency_ms = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
