"""Reads: a version's snapshot, split by split, in manifest order (what the index, receipt and valuation code
share), and the receipts, citations and valuations a viewer may see."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from accounts.models import User
from attribution.models import AttributionIndex, Citation, Flag, Receipt, RecordValuation, ValuationDesignation
from core.errors import NotFound
from core.models import Job
from datanets.models import Datanet, SnapshotRecord
from datanets.selectors import datanet_ids_visible
from models_factory.models import Inference, ModelVersion


def train_entries(version: ModelVersion) -> list[tuple[int, str, int, dict[str, Any]]]:
    """(record id, record hash, contributor id, data) of the snapshot's training split, in manifest order."""
    return list(
        SnapshotRecord.objects.filter(snapshot_id=version.snapshot_id, split=SnapshotRecord.Split.TRAIN)
        .order_by("position")
        .values_list("record_id", "record__content_hash", "record__contributor_id", "record__data")
    )


def validation_entries(version: ModelVersion) -> list[dict[str, Any]]:
    return list(
        SnapshotRecord.objects.filter(snapshot_id=version.snapshot_id, split=SnapshotRecord.Split.VALIDATION)
        .order_by("position")
        .values_list("record__data", flat=True)
    )


def record_text(data: dict[str, Any]) -> str:
    """A generative record's text as the span index reads it."""
    return "\n".join(
        str(data[k])
        for k in ("question", "instruction", "input", "context", "text", "answer", "response")
        if data.get(k)
    )


# --- Who sees what ---------------------------------------------------------------------------------------------
# A receipt, an index and a citation are derived from a model's Datanet: they answer only to those who can see that
# Datanet, and a receipt also to its consumer. The consumer's input and output are theirs alone (and staff's):
# everyone else sees their hashes, which the receipt body carries anyway.


def receipts_visible(user: User) -> QuerySet[Receipt]:
    receipts = Receipt.objects.select_related("version__ml_model__datanet", "inference")
    if getattr(user, "is_staff", False):
        return receipts
    visible = Q(version__ml_model__datanet__in=datanet_ids_visible(user))
    if user.is_authenticated:
        visible |= Q(inference__consumer=user)
    return receipts.filter(visible)


def receipt_visible(user: User, receipt_id: str) -> Receipt:
    """The receipt if this user may see it; a receipt they may not see answers exactly like a missing one."""
    receipt = receipts_visible(user).filter(pk=receipt_id).first()
    if receipt is None:
        raise NotFound(f"There is no receipt {receipt_id!r}. Receipt ids are 64 hex characters.")
    return receipt


def can_see_input(user: User, inference: Inference) -> bool:
    return bool(getattr(user, "is_staff", False)) or (user.is_authenticated and inference.consumer_id == user.pk)


def citations_visible(user: User) -> QuerySet[Citation]:
    return Citation.objects.filter(record__datanet__in=datanet_ids_visible(user))


def valuations_visible(user: User) -> QuerySet[RecordValuation]:
    return RecordValuation.objects.filter(record__datanet__in=datanet_ids_visible(user))


def index_job_readable(user: User, job: Job) -> bool:
    """The owner of the Datanet a version trained on watches its index build (read-only)."""
    return AttributionIndex.objects.filter(job=job, version__snapshot__datanet__owner=user).exists()


def valuation_job_readable(user: User, job: Job) -> bool:
    """The owner of the Datanet a version trained on watches its epoch valuation (read-only)."""
    if not job.target_id.isdigit():
        return False
    return ModelVersion.objects.filter(pk=int(job.target_id), snapshot__datanet__owner=user).exists()


# --- Who values a Datanet ----------------------------------------------------------------------------------------


def valuing_version(datanet: Datanet) -> tuple[ModelVersion | None, str]:
    """(the version whose valuation has consequences for this Datanet, the rule that chose it in words).

    The owner's designated version if there is one (even before it is valued: then nothing is valued yet);
    otherwise the newest valued version of a model built by the owner or a builder the owner allowed. A stranger's
    model never values a Datanet."""
    designation = ValuationDesignation.objects.filter(datanet=datanet).first()
    if designation is not None and designation.version_id is not None:
        return designation.version, "designated by the Datanet's owner"
    builders = {datanet.owner_id}
    rule = "the newest valued version of the owner's own models"
    if designation is not None:
        allowed = set(designation.builders.values_list("pk", flat=True))
        if allowed:
            builders |= allowed
            rule = "the newest valued version of a model by the owner or a builder the owner allowed"
    valued = RecordValuation.objects.filter(version__ml_model__datanet=datanet).values("version_id")
    version = (
        ModelVersion.objects.filter(pk__in=valued, ml_model__datanet=datanet, ml_model__builder_id__in=builders)
        .select_related("ml_model")
        .order_by("-created_at", "-pk")
        .first()
    )
    return version, rule


def uncredited_records(version: ModelVersion, record_ids: list[int]) -> set[int]:
    """Records among ``record_ids`` that a receipt of ``version`` credits nothing: those with an open or confirmed
    flag (raised by the Datanet's valuing version), and those this version's own valuation flagged unless a curator
    dismissed them (another version's valuation touches only its own receipts)."""
    flags = Flag.objects.filter(record_id__in=record_ids).values_list("record_id", "status")
    held = {r for r, status in flags if status != Flag.Status.DISMISSED}
    cleared = {r for r, status in flags if status == Flag.Status.DISMISSED} - held
    own = set(
        RecordValuation.objects.filter(version=version, record_id__in=record_ids, flagged=True).values_list(
            "record_id", flat=True
        )
    )
    return held | (own - cleared)


def flags_for_curators(
    datanet: Datanet, *, version_id: int | None = None, reason: str = "", status: str = "open"
) -> QuerySet[Flag]:
    """A Datanet's flags, most severe first, optionally of one version and reason (the Flagged page and API)."""
    flags = Flag.objects.filter(record__datanet=datanet).select_related("record__contributor", "version__ml_model")
    if status:
        flags = flags.filter(status=status)
    if version_id is not None:
        flags = flags.filter(version_id=version_id)
    if reason:
        flags = flags.filter(reason=reason)
    return flags.order_by("-severity", "-created_at", "pk")
