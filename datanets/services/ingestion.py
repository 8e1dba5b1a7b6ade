"""Ingestion: a contribution's file becomes records, batch by batch, on a worker.

Each batch is validated, checked for exact and near duplicates (MinHash LSH bands against the Datanet's earlier
originals, then within the batch), held to the contributor's daily record quota and stored in one transaction
together with its resume point, so a worker that dies mid-file continues where the last batch committed.

Every row read counts against the contributor's daily row cap, duplicates and invalid rows included: a duplicate is
cheap to store (a link to its original, without its data) but not free to read. A file that breaks mid-stream keeps
the rows read before the break and fails, saying where.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction

from accounts.audit import audit_record
from core.background import in_background
from core.bulk import RawJSON, bulk_insert
from core.canonical import canonical_json
from core.errors import UserError
from core.jobs import JobProgress, job_fail, job_run, job_succeed
from core.models import Job
from core.storage import blob_local_path
from datanets import selectors
from datanets.ingest.neardup import RECALL_WEIGHTS, MinHasher, lsh_params
from datanets.ingest.parsers import FileError, Row, detect_format, iter_rows
from datanets.ingest.schema import RecordError, validate_record
from datanets.models import Contribution, Datanet, Record, RowError
from datanets.services.duplicates import (
    PendingRecord,
    band_index_add,
    band_index_get,
    band_index_save,
    exact_duplicates_mark,
    near_duplicates_mark,
    signatures_compute,
)

NUM_PERM = 128
MAX_STORED_ERRORS = 10_000


def contribution_ingest(*, job_id: str) -> None:
    job_run(job_id, _ingest)


def _ingest(job: Job) -> None:
    contribution = Contribution.objects.select_related("datanet", "contributor").get(pk=job.target_id)
    datanet = contribution.datanet
    Contribution.objects.filter(pk=contribution.pk).update(status=Contribution.Status.INGESTING)
    fmt, gz = detect_format(contribution.filename)
    # Parquet rows are sized by their decoded values, which do not add up to the file's size.
    total = 0 if gz or fmt == "parquet" else contribution.size_bytes
    progress = JobProgress(job, total=total, unit="bytes" if total else "rows")
    hasher = MinHasher(num_perm=NUM_PERM)
    # Recall-weighted bands: a false candidate costs one signature comparison, a missed near duplicate earns credit.
    bands, rows = lsh_params(datanet.near_dup_threshold, NUM_PERM, *RECALL_WEIGHTS)
    used = selectors.quota_used_today(contribution.contributor)
    quota_left = settings.QUOTA_RECORDS_PER_DAY - used["records"]
    # This contribution's rows already read (an earlier attempt) are in used["rows"] and are skipped below.
    rows_left = settings.QUOTA_ROWS_PER_DAY - used["rows"]
    batch_size = settings.INGEST_BATCH_SIZE
    error = ""
    over_cap: Row | None = None
    with blob_local_path(contribution.blob_name) as path:
        batches = _prepared_batches(contribution, path, hasher, bands, rows, rows_left=rows_left, batch_size=batch_size)
        # Reading, validating and hashing the next batch (worker CPU) overlaps storing this one (database time).
        for batch in in_background(batches):
            if batch.last:
                # What was read before the file ended, broke or reached the row cap is stored, whatever comes next.
                if batch.rows or batch.over_cap is not None:
                    _ingest_batch(contribution, batch, bands, rows, quota_left)
                error, over_cap = batch.file_error, batch.over_cap
                break
            quota_left = _ingest_batch(contribution, batch, bands, rows, quota_left)
            progress.update(
                batch.done_bytes if total else contribution.rows_seen, message=_ingest_message(contribution)
            )
            if progress.cancelled():
                raise UserError("Cancelled by the user.")
    band_index_save(datanet, bands, rows)
    contribution.refresh_from_db()
    if error and contribution.rows_seen:
        error += f" (the {contribution.rows_seen:,} rows before it were stored)"
    elif over_cap is not None:
        error = (
            f"line {over_cap.line_no}: over your daily limit of {settings.QUOTA_ROWS_PER_DAY:,} rows read "
            "(duplicates and rows with errors count too); the rest of the file was not read, upload it tomorrow"
        )
        _ingest_finish(contribution, job, stopped=error)
        return
    _ingest_finish(contribution, job, error=error)


def contribution_abandoned(job: Job) -> None:
    """The ingestion job was failed after its attempts ran out: the contribution fails with the job's reason."""
    Contribution.objects.filter(
        pk=job.target_id, status__in=[Contribution.Status.QUEUED, Contribution.Status.INGESTING]
    ).update(status=Contribution.Status.FAILED, error=job.error)


def _ingest_message(c: Contribution) -> str:
    return (
        f"{c.rows_seen:,} rows: {c.records_new:,} new, {c.records_duplicate + c.records_near_duplicate:,} duplicates, "
        f"{c.records_invalid:,} with errors"
    )


def _ingest_finish(contribution: Contribution, job: Job, *, error: str = "", stopped: str = "") -> None:
    """A file error fails the contribution (rows read before it stay stored); ``stopped`` ends it early but done."""
    status = Contribution.Status.FAILED if error else Contribution.Status.DONE
    error = error or stopped
    Contribution.objects.filter(pk=contribution.pk).update(status=status, error=error)
    contribution.refresh_from_db()
    result = {
        "rows": contribution.rows_seen,
        "new": contribution.records_new,
        "invalid": contribution.records_invalid,
        "duplicates": contribution.records_duplicate,
        "near_duplicates": contribution.records_near_duplicate,
        "over_quota": contribution.records_over_quota,
    }
    if status == Contribution.Status.FAILED:
        job_fail(job=job, error=error, message=error)
    else:
        message = _ingest_message(contribution) + (f". Stopped early: {error}" if error else "")
        job_succeed(job=job, result=result, message=message)
    audit_record(actor=None, action="contribution.ingested", target=contribution, after={**result, "error": error})


# --- One batch, step by step ----------------------------------------------------------------------------------


@dataclass
class _Batch:
    """Rows read from the file, validated, hashed and signed: everything about a batch that needs no database."""

    rows: list[Row]
    pending: list[PendingRecord]
    errors: list[RowError]
    band_of: dict[int, np.ndarray]
    done_bytes: int
    last: bool = False
    over_cap: Row | None = None  # the first row past the daily row cap: stored as an error row, ends the file
    file_error: str = ""


def _prepared_batches(
    contribution: Contribution,
    path: Any,
    hasher: MinHasher,
    bands: int,
    rows: int,
    *,
    rows_left: int,
    batch_size: int,
) -> Iterator[_Batch]:
    """The file's batches, then one ``last`` batch with what was left when the file ended, broke or hit the row cap."""

    def prepare(batch: list[Row], done_bytes: int, **last: Any) -> _Batch:
        pending, errors = _rows_validate(contribution, batch)
        band_of = signatures_compute(pending, hasher, bands, rows) if pending else {}
        return _Batch(batch, pending, errors, band_of, done_bytes, **last)

    batch: list[Row] = []
    done_bytes = 0
    try:
        for row in iter_rows(
            path,
            filename=contribution.filename,
            kind=contribution.datanet.record_kind,
            column_map=contribution.column_map or None,
            max_expanded_bytes=settings.UPLOAD_MAX_EXPANDED_BYTES,
            max_line_bytes=settings.UPLOAD_MAX_LINE_BYTES,
            start_line=contribution.last_line,
        ):
            if rows_left <= len(batch):
                yield prepare(batch, done_bytes, last=True, over_cap=row)
                return
            batch.append(row)
            done_bytes += row.nbytes
            if len(batch) >= batch_size:
                yield prepare(batch, done_bytes)
                rows_left -= len(batch)
                batch = []
    except FileError as exc:
        yield prepare(batch, done_bytes, last=True, file_error=str(exc))
        return
    yield prepare(batch, done_bytes, last=True)


def _ingest_batch(contribution: Contribution, batch: _Batch, bands: int, rows: int, quota_left: int) -> int:
    """Dedupe and store one prepared batch in one transaction, with the resume point. Returns quota left."""
    datanet = contribution.datanet
    pending, errors, band_of, over_cap = batch.pending, batch.errors, batch.band_of, batch.over_cap
    capped: list[RowError] = []
    if over_cap is not None:
        capped.append(
            RowError(
                contribution=contribution,
                line_no=over_cap.line_no,
                message=f"line {over_cap.line_no}: over your daily limit of {settings.QUOTA_ROWS_PER_DAY:,} rows "
                "read (duplicates and rows with errors count too); ingestion stopped here, upload the rest tomorrow",
            )
        )
    last_line = over_cap.line_no if over_cap is not None else batch.rows[-1].line_no

    with transaction.atomic():
        if connection.vendor == "postgresql":
            # The batch and its resume point commit together, so a commit lost in a database crash is only read
            # again: waiting for the WAL flush buys nothing here (it was ~6% of a batch).
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit = off")
        # One ingestion at a time per Datanet writes originals, so "earliest record" is well defined.
        Datanet.objects.select_for_update().filter(pk=datanet.pk).first()
        contribution_row = Contribution.objects.select_for_update().get(pk=contribution.pk)
        if contribution_row.last_line >= last_line:
            return quota_left  # this batch was committed by an earlier attempt
        pending, errors = _already_stored_drop(
            contribution, pending, errors + capped, after_line=contribution_row.last_line, last_line=last_line
        )
        capped = [e for e in errors if over_cap is not None and e.line_no == over_cap.line_no]
        exact_duplicates_mark(datanet, pending)
        pending, refused, quota_left = _quota_apply(contribution, pending, quota_left)
        fresh = [p for p in pending if p.status == Record.Status.PENDING]
        index = band_index_get(datanet, bands, rows)
        near_duplicates_mark(datanet, fresh, band_of, index)

        originals = [p for p in pending if p.status == Record.Status.PENDING]
        near = [p for p in pending if p.status == Record.Status.NEAR_DUPLICATE]
        exact = [p for p in pending if p.status == Record.Status.DUPLICATE]
        local_ids = _records_insert(contribution, (originals, near, exact))
        _row_errors_insert(
            errors + refused, stored=contribution_row.records_invalid + contribution_row.records_over_quota
        )
        _counters_add(
            contribution,
            contribution_row,
            _BatchCounts(
                new=len(originals),
                near_duplicate=len(near),
                duplicate=len(exact),
                invalid=len(errors) - len(capped),
                over_quota=len(refused) + len(capped),
            ),
            last_line=last_line,
        )
    # Only once committed: an index entry for a rolled-back row would claim an id that another row may take.
    band_index_add(index, [local_ids[id(p)] for p in originals], [band_of[id(p)] for p in originals])
    return quota_left


def _rows_validate(contribution: Contribution, batch: list[Row]) -> tuple[list[PendingRecord], list[RowError]]:
    """Rows that parse and fit the Datanet's schema, hashed; an error row for each that does not."""
    datanet = contribution.datanet
    errors: list[RowError] = []
    pending: list[PendingRecord] = []
    for row in batch:
        if row.error is not None:
            errors.append(RowError(contribution=contribution, line_no=row.line_no, message=row.error[:500]))
            continue
        try:
            record = validate_record(row.data, kind=datanet.record_kind, labels=datanet.labels or None)
        except RecordError as exc:
            errors.append(
                RowError(contribution=contribution, line_no=row.line_no, message=f"line {row.line_no}: {exc}"[:500])
            )
            continue
        canonical = canonical_json(record)
        pending.append(
            PendingRecord(
                line_no=row.line_no,
                data=record,
                # The same bytes are hashed and stored, so the stored data is the canonical form by construction.
                hash=hashlib.sha256(canonical).hexdigest(),
                canonical=canonical,
                label=str(record.get("label", ""))[:100],
                text=datanet.kind.text_of(record),
            )
        )
    return pending, errors


def _already_stored_drop(
    contribution: Contribution,
    pending: list[PendingRecord],
    errors: list[RowError],
    *,
    after_line: int,
    last_line: int,
) -> tuple[list[PendingRecord], list[RowError]]:
    """Skip lines already stored: a crash between commit and the next read can leave rows of this batch behind."""
    in_batch = {"contribution": contribution, "line_no__gt": after_line, "line_no__lte": last_line}
    done_lines = set(Record.objects.filter(**in_batch).values_list("line_no", flat=True)) | set(
        RowError.objects.filter(**in_batch).values_list("line_no", flat=True)
    )
    return [p for p in pending if p.line_no not in done_lines], [e for e in errors if e.line_no not in done_lines]


def _quota_apply(
    contribution: Contribution, pending: list[PendingRecord], quota_left: int
) -> tuple[list[PendingRecord], list[RowError], int]:
    """(rows kept, an error row per row refused, quota left). Only new work counts against the quota; a duplicate
    of a refused row in this batch is refused with it."""
    fresh = [p for p in pending if p.status == Record.Status.PENDING]
    if len(fresh) <= quota_left:
        return pending, [], quota_left - len(fresh)
    dropped = {id(p) for p in fresh[max(quota_left, 0) :]}
    dropped |= {id(p) for p in pending if p.original is not None and id(p.original) in dropped}
    refused = [
        RowError(
            contribution=contribution,
            line_no=p.line_no,
            message=f"line {p.line_no}: over your daily limit of {settings.QUOTA_RECORDS_PER_DAY:,} "
            "records; upload the rest tomorrow",
        )
        for p in pending
        if id(p) in dropped
    ]
    return [p for p in pending if id(p) not in dropped], refused, 0


RECORD_FIELDS = tuple(
    "datanet contribution contributor line_no data content_hash label status duplicate_of similarity minhash".split()
)


def _records_insert(contribution: Contribution, groups: tuple[list[PendingRecord], ...]) -> dict[int, int]:
    """Insert the groups in order (originals first, so duplicates within the batch can point at them).
    Returns the new record ids by ``id()`` of the row."""
    local_ids: dict[int, int] = {}

    def build(p: PendingRecord) -> tuple[Any, ...]:
        dup = p.duplicate_of
        if dup is None and p.original is not None:
            dup = local_ids[id(p.original)]
        return (
            contribution.datanet_id,
            contribution.pk,
            contribution.contributor_id,
            p.line_no,
            # A duplicate is a link to its original: its data is read through duplicate_of (Record.content),
            # so a file of one row repeated stores that row once.
            RawJSON(p.canonical.decode())
            if p.status == Record.Status.PENDING and p.canonical
            else (p.data if p.status == Record.Status.PENDING else {}),
            p.hash,
            p.label,
            p.status,
            dup,
            p.similarity,
            p.signature.tobytes() if p.signature is not None and p.status == Record.Status.PENDING else None,
        )

    for group in groups:
        created_ids = bulk_insert(
            Record, [build(p) for p in group], fields=RECORD_FIELDS, returning_ids=True, batch_size=1000
        )
        for p, pk in zip(group, created_ids):
            local_ids[id(p)] = pk
    return local_ids


def _row_errors_insert(errors: list[RowError], *, stored: int) -> None:
    """Keep at most MAX_STORED_ERRORS error rows per contribution (``stored`` are kept already); all are counted."""
    if stored < MAX_STORED_ERRORS:
        bulk_insert(RowError, errors[: MAX_STORED_ERRORS - stored], fields=(), batch_size=1000)


@dataclass(frozen=True)
class _BatchCounts:
    new: int
    near_duplicate: int
    duplicate: int
    invalid: int
    over_quota: int

    @property
    def rows(self) -> int:
        return self.new + self.near_duplicate + self.duplicate + self.invalid + self.over_quota


def _counters_add(
    contribution: Contribution, contribution_row: Contribution, counts: _BatchCounts, *, last_line: int
) -> None:
    """Add the batch to the locked row with the resume point, and mirror the totals on the caller's instance."""
    contribution_row.rows_seen += counts.rows
    contribution_row.records_new += counts.new
    contribution_row.records_near_duplicate += counts.near_duplicate
    contribution_row.records_duplicate += counts.duplicate
    contribution_row.records_invalid += counts.invalid
    contribution_row.records_over_quota += counts.over_quota
    contribution_row.last_line = last_line
    contribution_row.save()
    contribution.rows_seen = contribution_row.rows_seen
    contribution.records_new = contribution_row.records_new
    contribution.records_duplicate = contribution_row.records_duplicate
    contribution.records_near_duplicate = contribution_row.records_near_duplicate
    contribution.records_invalid = contribution_row.records_invalid
    contribution.last_line = last_line
