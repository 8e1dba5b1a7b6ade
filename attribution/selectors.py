"""Reads the index, receipt and valuation code share: a version's snapshot, split by split, in manifest order."""

from __future__ import annotations

from typing import Any

from datanets.models import SnapshotRecord
from models_factory.models import ModelVersion


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
