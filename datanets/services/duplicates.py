"""Duplicates during ingestion: exact ones by content hash, near ones by MinHash LSH bands against the Datanet's
earlier originals and within the batch. A duplicate never earns credit; its earliest original does.

The band keys are not stored in the database (that was ~14 rows per record): the truth is each original's stored
MinHash signature, from which a per-Datanet :class:`BandIndex` is built in the worker, kept between batches and
saved to ``BAND_INDEX_DIR`` so the next ingestion only catches up on records committed since."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection
from django.db.models import Max

from datanets.ingest.neardup import BandIndex, MinHasher, band_keys, jaccard_estimate
from datanets.models import Datanet, Record


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
    canonical: bytes = b""  # the canonical JSON of data, hashed and stored as is


def exact_duplicates_mark(datanet: Datanet, pending: list[PendingRecord]) -> None:
    """Exact duplicates: against the Datanet's stored records, then within the batch."""
    existing = _stored_originals_by_hash(datanet, sorted({p.hash for p in pending}))
    first_in_batch: dict[str, PendingRecord] = {}
    for p in pending:
        if p.hash in existing:
            p.status, p.duplicate_of, p.similarity = Record.Status.DUPLICATE, existing[p.hash], 1.0
        elif p.hash in first_in_batch:
            p.status, p.original, p.similarity = Record.Status.DUPLICATE, first_in_batch[p.hash], 1.0
        else:
            first_in_batch[p.hash] = p


def _stored_originals_by_hash(datanet: Datanet, hashes: list[str]) -> dict[str, int]:
    if not hashes:
        return {}
    if connection.vendor == "postgresql":
        # One array parameter joined against the partial unique index, instead of thousands of IN placeholders.
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT r.content_hash, r.id FROM unnest(%s::varchar[]) AS h(content_hash) "
                f"JOIN {Record._meta.db_table} r ON r.datanet_id = %s AND r.content_hash = h.content_hash "
                "AND r.status <> %s",
                [hashes, datanet.pk, Record.Status.DUPLICATE],
            )
            return dict(cursor.fetchall())
    found: dict[str, int] = {}
    for start in range(0, len(hashes), 900):
        found.update(
            Record.objects.filter(datanet=datanet, content_hash__in=hashes[start : start + 900])
            .exclude(status=Record.Status.DUPLICATE)
            .values_list("content_hash", "id")
        )
    return found


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

# The last band index this process used, so a worker that ingests one paste after another into the same Datanet
# loads it once. One entry only: an index costs ~112 bytes per record and the worker's memory must stay flat.
_last_index: tuple[str, BandIndex] | None = None
CATCH_UP_CHUNK = 20_000


def _index_key(datanet: Datanet, bands: int, rows: int) -> str:
    # created_at tells two Datanets with the same id apart (a recreated database reuses ids).
    stamp = int(datanet.created_at.timestamp() * 1_000_000) if datanet.created_at else 0
    return f"{datanet.pk}-{stamp}-{bands}x{rows}"


def _index_path(key: str) -> Path:
    folder = Path(settings.BAND_INDEX_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{key}.npz"


def band_index_get(datanet: Datanet, bands: int, rows: int) -> BandIndex:
    """The Datanet's band index, up to date with every original committed so far: from this process's memory,
    else the file the last ingestion saved, else built from the stored signatures. Call it while holding the
    Datanet's lock for a complete view (ingestion does, once per batch)."""
    global _last_index
    key = _index_key(datanet, bands, rows)
    if _last_index is not None and _last_index[0] == key:
        index = _last_index[1]
    else:
        _last_index = None  # free the previous Datanet's index before loading this one
        index = BandIndex.load(str(_index_path(key)), bands, rows) or BandIndex(bands, rows)
        _last_index = (key, index)
    band_index_catch_up(index, datanet)
    return index


def band_index_catch_up(index: BandIndex, datanet: Datanet) -> None:
    """Add the originals committed since the index last saw the Datanet (other workers, or all of them).

    Under the Datanet's lock no record of it can appear later with a smaller id than any committed now (ids are
    taken under that lock), so the index then covers up to the table's largest id: the next catch-up starts there
    instead of rescanning other Datanets' records."""
    newest = Record.objects.aggregate(newest=Max("id"))["newest"] or 0
    while True:
        chunk = list(
            Record.objects.filter(datanet=datanet, id__gt=index.covered_id, minhash__isnull=False)
            .order_by("id")
            .values_list("id", "minhash")[:CATCH_UP_CHUNK]
        )
        if not chunk:
            break
        ids = np.fromiter((rid for rid, _ in chunk), dtype=np.int64, count=len(chunk))
        sigs = np.frombuffer(b"".join(bytes(blob) for _, blob in chunk), dtype=np.uint32).reshape(len(chunk), -1)
        index.add(ids, band_keys(sigs, index.bands, index.rows))
        index.covered_id = int(ids[-1])
        if len(chunk) < CATCH_UP_CHUNK:
            break
    index.covered_id = max(index.covered_id, newest)


def band_index_add(index: BandIndex, ids: list[int], keys: list[np.ndarray]) -> None:
    """Add originals that were just committed (ids ascending, allocated under the Datanet's lock)."""
    if ids:
        index.add(np.asarray(ids, dtype=np.int64), np.vstack(keys))
        index.covered_id = max(index.covered_id, int(ids[-1]))


def band_index_save(datanet: Datanet, bands: int, rows: int) -> None:
    """Persist this process's index of the Datanet (if it holds one) once it has grown by 5% (or 50k keys) since its file was written: a lagging file only
    costs the next worker a catch-up, a lost one a rebuild from the stored signatures."""
    key = _index_key(datanet, bands, rows)
    if _last_index is None or _last_index[0] != key:
        return
    index = _last_index[1]
    if len(index) - index.saved_len < max(50_000, index.saved_len // 20):
        return
    index.save(str(_index_path(key)))


def _stored_signatures(datanet: Datanet, ids: set[int]) -> dict[int, np.ndarray]:
    signatures: dict[int, np.ndarray] = {}
    ordered = sorted(ids)
    for start in range(0, len(ordered), 5000):
        rows = Record.objects.filter(datanet=datanet, pk__in=ordered[start : start + 5000], minhash__isnull=False)
        for rid, blob in rows.values_list("id", "minhash"):
            signatures[rid] = np.frombuffer(bytes(blob), dtype=np.uint32)
    return signatures


def _shared_keys_in_batch(keys: np.ndarray) -> dict[int, set[int]]:
    """For each row of the batch that shares a band key with an earlier row: those earlier rows."""
    n, bands = keys.shape
    flat = keys.ravel()
    order = np.argsort(flat, kind="stable")
    ordered = flat[order]
    same = np.flatnonzero(ordered[1:] == ordered[:-1])
    earlier: dict[int, set[int]] = defaultdict(set)
    if not len(same):
        return earlier
    # Walk each run of equal keys (rare: near duplicates and chance collisions).
    starts = same[np.r_[True, np.diff(same) > 1]]
    for start in starts.tolist():
        end = start + 1
        while end < len(ordered) and ordered[end] == ordered[start]:
            end += 1
        group = sorted({int(order[k]) // bands for k in range(start, end)})
        for pos, row in enumerate(group):
            earlier[row].update(group[:pos])
    return {row: rows for row, rows in earlier.items() if rows}


def near_duplicates_mark(
    datanet: Datanet, fresh: list[PendingRecord], band_of: dict[int, np.ndarray], index: BandIndex
) -> None:
    """Mark each fresh row whose estimated Jaccard with an earlier original (stored, else earlier in this batch)
    reaches the Datanet's threshold; the earliest such original wins. Only rows sharing a band key with something
    are looked at one by one; the rest of the batch is settled by two sorted lookups."""
    threshold = datanet.near_dup_threshold
    if not fresh:
        return
    keys = np.vstack([band_of[id(p)] for p in fresh])
    stored = index.query(keys)
    local = _shared_keys_in_batch(keys)
    signatures = _stored_signatures(datanet, set().union(*stored))
    for i in sorted({i for i, c in enumerate(stored) if c} | set(local)):
        p = fresh[i]
        match = next(
            (
                (rid, sim)
                for rid in sorted(stored[i])
                if rid in signatures and (sim := jaccard_estimate(p.signature, signatures[rid])) >= threshold
            ),
            None,
        )
        if match is not None:
            p.status, p.duplicate_of, p.similarity = Record.Status.NEAR_DUPLICATE, match[0], match[1]
            continue
        # Earlier rows of this batch count only if they stayed originals (rows are settled in order).
        local_match = next(
            (
                (j, sim)
                for j in sorted(local.get(i, ()))
                if fresh[j].status == Record.Status.PENDING
                and (sim := jaccard_estimate(p.signature, fresh[j].signature)) >= threshold
            ),
            None,
        )
        if local_match is not None:
            p.status, p.similarity, p.original = Record.Status.NEAR_DUPLICATE, local_match[1], fresh[local_match[0]]
