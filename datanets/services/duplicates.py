"""Duplicates during ingestion: exact ones by content hash, near ones by MinHash LSH bands against the Datanet's
earlier originals and within the batch. A duplicate never earns credit; its earliest original does."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import connection

from datanets.ingest.neardup import MinHasher, band_keys, jaccard_estimate
from datanets.models import Datanet, Record, RecordBand


@dataclass
class PendingRecord:
    """A validated row on its way to becoming a record."""

    line_no: int
    data: dict[str, Any]
    hash: str
    label: str
    text: str
    status: str = Record.Status.PENDING
    duplicate_of: int | None = None
    original: PendingRecord | None = None  # the original when it is in this same batch
    similarity: float | None = None
    signature: np.ndarray | None = None


def exact_duplicates_mark(datanet: Datanet, pending: list[PendingRecord]) -> None:
    """Exact duplicates: against the Datanet's stored records, then within the batch."""
    existing = dict(
        Record.objects.filter(datanet=datanet, content_hash__in=[p.hash for p in pending])
        .exclude(status=Record.Status.DUPLICATE)
        .values_list("content_hash", "id")
    )
    first_in_batch: dict[str, PendingRecord] = {}
    for p in pending:
        if p.hash in existing:
            p.status, p.duplicate_of, p.similarity = Record.Status.DUPLICATE, existing[p.hash], 1.0
        elif p.hash in first_in_batch:
            p.status, p.original, p.similarity = Record.Status.DUPLICATE, first_in_batch[p.hash], 1.0
        else:
            first_in_batch[p.hash] = p


def signatures_compute(fresh: list[PendingRecord], hasher: MinHasher, bands: int, rows: int) -> dict[int, np.ndarray]:
    """Set each row's MinHash signature; return its LSH band keys by ``id()`` of the row."""
    band_of: dict[int, np.ndarray] = {}
    sigs = hasher.signatures([p.text for p in fresh])
    keys = band_keys(sigs, bands, rows)
    for p, sig, key_row in zip(fresh, sigs, keys):
        p.signature = sig
        band_of[id(p)] = key_row
    return band_of


# --- Near duplicates ------------------------------------------------------------------------------------------


def _band_candidates(datanet_id: int, keys: list[int]) -> list[tuple[int, int]]:
    """(band key, record id) of stored originals sharing any of the keys."""
    if connection.vendor == "postgresql":
        # One array parameter instead of thousands of IN placeholders: measured 1.35 s -> 0.6 s per 70k keys.
        table = RecordBand._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT band_key, record_id FROM {table} WHERE datanet_id_ref = %s AND band_key = ANY(%s)",
                [datanet_id, keys],
            )
            return list(cursor.fetchall())
    out: list[tuple[int, int]] = []
    for start in range(0, len(keys), 5000):
        chunk = keys[start : start + 5000]
        out.extend(
            RecordBand.objects.filter(datanet_id_ref=datanet_id, band_key__in=chunk).values_list(
                "band_key", "record_id"
            )
        )
    return out


def _near_duplicate_candidates(
    datanet: Datanet, fresh: list[PendingRecord], band_of: dict[int, np.ndarray]
) -> tuple[dict[int, list[int]], dict[int, np.ndarray]]:
    """(stored originals by band key, their signatures by record id) for the band keys of the fresh rows."""
    all_keys = sorted({int(k) for p in fresh for k in band_of[id(p)]})
    candidates_by_key: dict[int, list[int]] = defaultdict(list)
    for key, record_id in _band_candidates(datanet.pk, all_keys):
        candidates_by_key[key].append(record_id)
    candidate_ids = sorted({rid for ids in candidates_by_key.values() for rid in ids})
    signatures: dict[int, np.ndarray] = {}
    for start in range(0, len(candidate_ids), 5000):
        for rid, blob in Record.objects.filter(pk__in=candidate_ids[start : start + 5000]).values_list("id", "minhash"):
            if blob:
                signatures[rid] = np.frombuffer(bytes(blob), dtype=np.uint32)
    return candidates_by_key, signatures


def near_duplicates_mark(datanet: Datanet, fresh: list[PendingRecord], band_of: dict[int, np.ndarray]) -> None:
    """Mark each fresh row whose estimated Jaccard with an earlier original (stored, else earlier in this batch)
    reaches the Datanet's threshold; the earliest such original wins."""
    threshold = datanet.near_dup_threshold
    candidates_by_key, signatures = _near_duplicate_candidates(datanet, fresh, band_of)
    local_by_key: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(fresh):
        best: tuple[int, float] | None = None  # earliest matching original wins
        for key in band_of[id(p)]:
            for rid in candidates_by_key.get(int(key), ()):
                sim = jaccard_estimate(p.signature, signatures[rid]) if rid in signatures else 0.0
                if sim >= threshold and (best is None or rid < best[0]):
                    best = (rid, sim)
        if best is not None:
            p.status, p.duplicate_of, p.similarity = Record.Status.NEAR_DUPLICATE, best[0], best[1]
            continue
        local_best: tuple[int, float] | None = None
        for key in band_of[id(p)]:
            for j in local_by_key.get(int(key), ()):
                sim = jaccard_estimate(p.signature, fresh[j].signature)
                if sim >= threshold and (local_best is None or j < local_best[0]):
                    local_best = (j, sim)
        if local_best is not None:
            p.status, p.similarity, p.original = Record.Status.NEAR_DUPLICATE, local_best[1], fresh[local_best[0]]
            continue
        for key in band_of[id(p)]:
            local_by_key[int(key)].append(i)
