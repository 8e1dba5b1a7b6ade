from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse

from core.models import Job
from datanets.models import Datanet, Record
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


class ValuationDesignation(models.Model):
    """Which model version values a Datanet: its valuation alone sends flags to curators, and settlement splits the
    Datanet's epoch pool by it. Set by the Datanet's owner (``valuation_designate``).

    ``version`` set: that version values the Datanet. Otherwise the newest valued version of a model built by the
    owner or by one of ``builders`` does. A Datanet without a row is valued by the owner's own newest valued version,
    so a stranger's model never decides anyone's pay.
    """

    datanet = models.OneToOneField(Datanet, on_delete=models.CASCADE, related_name="valuation_designation")
    version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="valuation_designations"
    )
    builders = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    designated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)


class RecordValuation(models.Model):
    """Epoch valuation of one record for one model version: its signals, and what the flag rule made of them
    (``reasons``: the ``Flag.Reason`` codes it raised, ``severity`` in [0, 1], ``evidence`` for curators)."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="valuations")
    record = models.ForeignKey(Record, on_delete=models.CASCADE, related_name="valuations")
    knn_shapley = models.FloatField()
    self_influence = models.FloatField(null=True, blank=True)
    flagged = models.BooleanField(default=False)
    reasons = models.JSONField(default=list, blank=True)
    severity = models.FloatField(default=0.0)
    evidence = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["version", "record"], name="unique_valuation")]


class Flag(models.Model):
    """A record sent back to curators by the valuing version's epoch valuation, with the evidence.

    At most one open flag per record and reason, whichever versions raised it (``version`` is the latest that did).
    A dismissal holds until the evidence grows materially: ``flags_sync`` reopens a record and reason only when the
    severity rises by ``DISMISSAL_MARGIN`` over what the curator dismissed (``dismissed_severity``).
    """

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CONFIRMED = "confirmed", "Confirmed harmful"
        DISMISSED = "dismissed", "Dismissed"

    class Reason(models.TextChoices):
        LABEL = "label_contradicted", "The rest of the data contradicts its label"
        VALUE = "harmful_value", "It makes the model worse on the validation split"

    record = models.ForeignKey(Record, on_delete=models.CASCADE, related_name="flags")
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="flags")
    reason = models.CharField(max_length=40, choices=Reason.choices, default=Reason.LABEL)
    summary = models.CharField(max_length=300, blank=True, help_text="The evidence in one sentence.")
    severity = models.FloatField(default=0.0, help_text="0 to 1: how strongly the evidence speaks against it.")
    evidence = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    dismissed_severity = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-severity", "-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["record", "reason"], condition=models.Q(status="open"), name="one_open_flag_per_record_reason"
            )
        ]
        indexes = [models.Index(fields=["status", "-severity"])]
