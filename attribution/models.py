from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse

from core.models import Job
from datanets.models import Record
from models_factory.models import Inference, ModelVersion


class AttributionIndex(models.Model):
    """The per-version index that attributes each inference to training records."""

    class Status(models.TextChoices):
        BUILDING = "building", "Building"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    version = models.OneToOneField(ModelVersion, on_delete=models.CASCADE, related_name="attribution_index")
    method = models.CharField(max_length=40)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.BUILDING)
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    path = models.CharField(max_length=500, blank=True)
    n_records = models.PositiveIntegerField(default=0)
    params = models.JSONField(default=dict, blank=True)
    bad_records = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    built_at = models.DateTimeField(null=True, blank=True)


class Receipt(models.Model):
    """What shaped one inference. ``id`` is the SHA-256 of ``body`` as canonical JSON, so anyone can check it."""

    id = models.CharField(max_length=64, primary_key=True)
    inference = models.OneToOneField(Inference, on_delete=models.PROTECT, related_name="receipt")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="receipts")
    method = models.CharField(max_length=40)
    body = models.JSONField()
    fee = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def get_absolute_url(self) -> str:
        return reverse("attribution:receipt", args=[self.id])


class Citation(models.Model):
    """One record in a receipt's top-k, with its contributor's share of the contributors' part of the fee."""

    receipt = models.ForeignKey(Receipt, on_delete=models.CASCADE, related_name="citations")
    record = models.ForeignKey(Record, on_delete=models.PROTECT, related_name="citations")
    contributor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="citations")
    rank = models.PositiveSmallIntegerField()
    score = models.FloatField()
    credit_ppm = models.PositiveIntegerField(default=0, help_text="This record's credit in millionths of the receipt.")

    class Meta:
        ordering = ["rank"]
        indexes = [models.Index(fields=["record"]), models.Index(fields=["contributor"])]


class RecordValuation(models.Model):
    """Epoch valuation of one record for one model version: KNN-Shapley and self-influence."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="valuations")
    record = models.ForeignKey(Record, on_delete=models.CASCADE, related_name="valuations")
    knn_shapley = models.FloatField()
    self_influence = models.FloatField(null=True, blank=True)
    flagged = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["version", "record"], name="unique_valuation")]


class Flag(models.Model):
    """A record sent back to curators by the epoch valuation, with the evidence."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CONFIRMED = "confirmed", "Confirmed harmful"
        DISMISSED = "dismissed", "Dismissed"

    record = models.ForeignKey(Record, on_delete=models.CASCADE, related_name="flags")
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="flags")
    reason = models.CharField(max_length=200)
    evidence = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["record", "version"], name="one_flag_per_record_version")]
