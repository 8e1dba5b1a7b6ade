"""Uploads: resumable chunked uploads, whole files and pastes become contributions, one per distinct file.

Hashing a file (up to ``UPLOAD_MAX_BYTES``) and copying it to storage are slow, so they happen before any
transaction starts; the transaction that follows only re-checks and writes rows.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import User
from core.errors import Conflict, Forbidden, NotFound, QuotaExceeded, TooLarge, UserError
from core.jobs import job_create, job_enqueue
from core.storage import blob_put_file, sha256_file
from datanets import selectors
from datanets.ingest.parsers import FileError, detect_format
from datanets.models import Contribution, Datanet, Upload


def _check_can_contribute(user: User, datanet: Datanet) -> None:
    if not user.is_authenticated:
        raise Forbidden("Log in to contribute.")
    if not selectors.can_contribute(user, datanet):
        raise NotFound(f"There is no Datanet '{datanet.slug}'.")  # like a missing one, never "it is private"


def _lock_contributor(user: User) -> None:
    """Serialize one contributor's quota checks: two parallel requests must not both fit under the same limit."""
    User.objects.select_for_update().filter(pk=user.pk).first()


def _check_byte_quota(user: User, size: int, *, completing: Upload | None = None) -> None:
    """Refuse bytes past the daily limit. Open uploads count with their declared size from the moment they start
    (call inside a transaction, after ``_lock_contributor``); ``completing`` is the upload being turned into a
    contribution, already counted among the open ones."""
    used = selectors.quota_used_today(user)["bytes"]
    reserved = selectors.upload_bytes_reserved(user, exclude=completing)
    limit = settings.QUOTA_BYTES_PER_DAY
    if used + reserved + size > limit:
        held = f", {reserved:,} held by uploads still in progress" if reserved else ""
        raise QuotaExceeded(
            f"This upload ({size:,} bytes) would pass your daily limit of {limit:,} bytes "
            f"({used:,} used today{held}). Try again tomorrow or upload a smaller file."
        )


def _check_filename(datanet: Datanet, filename: str) -> None:
    try:
        fmt, _ = detect_format(filename)
    except FileError as exc:
        raise UserError(str(exc)) from None
    if fmt == "txt" and datanet.record_kind != "text":
        raise UserError(
            f"A .txt file holds one plain text per line, but this Datanet takes {datanet.kind.name} records "
            f"with fields {', '.join(f.name for f in datanet.kind.fields)}: upload JSONL, CSV or Parquet."
        )


def _clean_column_map(column_map: dict[str, str] | None) -> dict[str, str]:
    if not column_map:
        return {}
    if not isinstance(column_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in column_map.items()
    ):
        raise UserError('column_map must map column names to field names, for example {"review": "text"}.')
    return {k.strip(): v.strip() for k, v in column_map.items() if k.strip() and v.strip()}


def upload_dir() -> Path:
    path = Path(settings.VAR_DIR) / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def upload_part_path(upload: Upload) -> Path:
    return upload_dir() / f"{upload.id}.part"


# --- Chunked uploads ------------------------------------------------------------------------------------------


def upload_start(
    *, user: User, datanet: Datanet, filename: str, size: int, column_map: dict[str, str] | None = None
) -> Upload:
    _check_can_contribute(user, datanet)
    filename = os.path.basename(filename.strip()) or "upload"
    _check_filename(datanet, filename)
    if size <= 0:
        raise UserError("The file is empty: there is nothing to upload.")
    if size > settings.UPLOAD_MAX_BYTES:
        raise TooLarge(
            f"The file is {size:,} bytes; the limit is {settings.UPLOAD_MAX_BYTES:,} bytes. "
            "Split it into smaller files or gzip it."
        )
    column_map = _clean_column_map(column_map)
    uploads_expire(user=user)
    with transaction.atomic():
        _lock_contributor(user)
        open_count = Upload.objects.filter(user=user, status=Upload.Status.OPEN).count()
        if open_count >= settings.UPLOADS_OPEN_PER_USER:
            raise QuotaExceeded(
                f"You have {open_count} uploads in progress, the most at once: finish or wait for one of them "
                f"(unfinished uploads expire after {settings.UPLOAD_EXPIRE_HOURS} hours)."
            )
        _check_byte_quota(user, size)
        upload = Upload.objects.create(datanet=datanet, user=user, filename=filename, size=size, column_map=column_map)
    upload_part_path(upload).touch()
    return upload


def uploads_expire(*, user: User | None = None) -> int:
    """Abort open uploads idle for ``UPLOAD_EXPIRE_HOURS`` and delete their part files; frees their quota."""
    cutoff = timezone.now() - timedelta(hours=settings.UPLOAD_EXPIRE_HOURS)
    stale = Upload.objects.filter(status=Upload.Status.OPEN, updated_at__lt=cutoff)
    if user is not None:
        stale = stale.filter(user=user)
    expired = 0
    for upload in stale.only("id"):
        with transaction.atomic():
            if Upload.objects.filter(pk=upload.pk, status=Upload.Status.OPEN).update(status=Upload.Status.ABORTED):
                expired += 1
        upload_part_path(upload).unlink(missing_ok=True)
    return expired


def upload_append(*, user: User, upload_id: str, offset: int, data: bytes) -> Upload:
    """Append a chunk at ``offset``. A chunk at the wrong offset is refused with the offset to resume from."""
    with transaction.atomic():
        upload = Upload.objects.select_for_update().filter(pk=upload_id, user=user).first()
        if upload is None:
            raise NotFound("No such upload among yours: start the upload again.")
        if upload.status != Upload.Status.OPEN:
            raise Conflict(f"This upload is already {upload.get_status_display().lower()}.")
        if offset != upload.received:
            raise Conflict(
                f"Expected the chunk at byte {upload.received:,}, got {offset:,}: resume from byte {upload.received:,}.",
                extra={"received": upload.received},
            )
        if upload.received + len(data) > upload.size:
            raise TooLarge(f"More bytes than the declared size of {upload.size:,}: start the upload again.")
        part = upload_part_path(upload)
        with open(part, "r+b" if part.exists() else "wb") as fh:
            fh.truncate(upload.received)  # drop bytes of an earlier attempt that never got committed
            fh.seek(upload.received)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        upload.received += len(data)
        upload.save(update_fields=["received", "updated_at"])
    return upload


@dataclass
class ContributionResult:
    contribution: Contribution
    created: bool

    @property
    def message(self) -> str:
        if self.created:
            return "Uploaded. Ingestion has started: records appear as they are checked."
        c = self.contribution
        return (
            f"This exact file was already uploaded to this Datanet on {c.created_at:%Y-%m-%d %H:%M} UTC "
            f"by {c.contributor.username} (contribution #{c.pk}); it was not counted again."
        )


def _upload_get(*, user: User, upload_id: str, for_update: bool = False) -> Upload:
    uploads = Upload.objects.select_related("datanet")
    if for_update:
        uploads = uploads.select_for_update()
    upload = uploads.filter(pk=upload_id, user=user).first()
    if upload is None:
        raise NotFound("No such upload among yours: start the upload again.")
    return upload


def _check_can_complete(upload: Upload) -> ContributionResult | None:
    """Refuse an upload that cannot complete; the earlier result when it already completed; None to go on."""
    if upload.status == Upload.Status.COMPLETE:
        if upload.contribution_id is not None:
            contribution = Contribution.objects.select_related("contributor").get(pk=upload.contribution_id)
            return ContributionResult(contribution, False)
        raise Conflict("This upload is already complete.")
    if upload.status != Upload.Status.OPEN:
        raise Conflict(f"This upload is already {upload.get_status_display().lower()}.")
    if upload.received != upload.size:
        raise Conflict(
            f"Only {upload.received:,} of {upload.size:,} bytes arrived: resume from byte {upload.received:,}.",
            extra={"received": upload.received},
        )
    return None


def upload_complete(*, user: User, upload_id: str) -> ContributionResult:
    """Turn a fully received upload into a contribution. Completing twice, even at once, gives one contribution."""
    upload = _upload_get(user=user, upload_id=upload_id)
    earlier = _check_can_complete(upload)
    if earlier is not None:
        return earlier
    part = upload_part_path(upload)
    try:
        stored: _StoredFile | None = _file_store(datanet=upload.datanet, path=part, filename=upload.filename)
    except FileNotFoundError:  # a parallel complete finished first and removed the part file
        stored = None
    with transaction.atomic():
        # Re-check under the lock: a parallel request may have completed the upload while this one hashed.
        _lock_contributor(user)
        upload = _upload_get(user=user, upload_id=upload_id, for_update=True)
        earlier = _check_can_complete(upload)
        if earlier is not None:
            return earlier
        if stored is None or stored.size_bytes != upload.size:
            raise Conflict("The uploaded bytes went missing or changed while they were stored: start the upload again.")
        # The role and the quota may have changed since the upload started (a private Datanet's owner removed the
        # contributor, or the day turned): check both again, with this upload's own reservation set aside.
        _check_can_contribute(user, upload.datanet)
        _check_byte_quota(user, upload.size, completing=upload)
        result = _contribution_create(
            user=user,
            datanet=upload.datanet,
            stored=stored,
            filename=upload.filename,
            source=Contribution.Source.FILE,
            column_map=upload.column_map,
        )
        upload.status = Upload.Status.COMPLETE
        upload.contribution = result.contribution
        upload.save(update_fields=["status", "contribution", "updated_at"])
    part.unlink(missing_ok=True)
    return result


# --- Whole files and pastes -----------------------------------------------------------------------------------


def contribution_from_path(
    *, user: User, datanet: Datanet, path: Path, filename: str, column_map: dict[str, str] | None = None
) -> ContributionResult:
    """A whole file already on this machine (API multipart upload, management command, demo loader)."""
    _check_can_contribute(user, datanet)
    _check_filename(datanet, filename)
    size = path.stat().st_size
    if size == 0:
        raise UserError("The file is empty: there is nothing to upload.")
    if size > settings.UPLOAD_MAX_BYTES:
        raise TooLarge(f"The file is {size:,} bytes; the limit is {settings.UPLOAD_MAX_BYTES:,} bytes.")
    _check_byte_quota(user, size)  # early, before the slow hashing; again under the lock below
    column_map = _clean_column_map(column_map)
    stored = _file_store(datanet=datanet, path=path, filename=filename)
    with transaction.atomic():
        _lock_contributor(user)
        _check_byte_quota(user, size)
        return _contribution_create(
            user=user,
            datanet=datanet,
            stored=stored,
            filename=filename,
            source=Contribution.Source.FILE,
            column_map=column_map,
        )


def contribution_from_paste(*, user: User, datanet: Datanet, text: str, fmt: str = "jsonl") -> ContributionResult:
    _check_can_contribute(user, datanet)
    data = text.encode("utf-8")
    if not text.strip():
        raise UserError("Nothing was pasted: paste at least one record.")
    if len(data) > settings.PASTE_MAX_BYTES:
        raise TooLarge(
            f"Pasted text is {len(data):,} bytes; paste at most {settings.PASTE_MAX_BYTES:,} bytes or upload a file."
        )
    if fmt not in {"jsonl", "csv", "txt"}:
        raise UserError("Pasted records must be JSON Lines, CSV or plain text lines.")
    filename = f"pasted.{fmt}"
    _check_filename(datanet, filename)
    _check_byte_quota(user, len(data))
    with tempfile.NamedTemporaryFile(delete=False, suffix="." + fmt) as tmp:
        tmp.write(data)
    try:
        stored = _file_store(datanet=datanet, path=Path(tmp.name), filename=filename)
        with transaction.atomic():
            _lock_contributor(user)
            _check_byte_quota(user, len(data))
            return _contribution_create(
                user=user,
                datanet=datanet,
                stored=stored,
                filename=filename,
                source=Contribution.Source.PASTE,
                column_map={},
            )
    finally:
        os.unlink(tmp.name)


# --- Storing the bytes, then the row --------------------------------------------------------------------------


@dataclass(frozen=True)
class _StoredFile:
    sha256: str
    size_bytes: int
    blob_name: str | None  # None: the Datanet already held these bytes when they were hashed, so none were copied


def _file_store(*, datanet: Datanet, path: Path, filename: str) -> _StoredFile:
    """Hash the file and copy it to content-addressed storage, unless the Datanet has it. Run outside transactions."""
    digest = sha256_file(path)
    size = path.stat().st_size
    if Contribution.objects.filter(datanet=datanet, file_sha256=digest).exists():
        return _StoredFile(sha256=digest, size_bytes=size, blob_name=None)
    suffix = "".join(Path(filename).suffixes[-2:]).lower()
    blob_name, _ = blob_put_file(path, sha256=digest, suffix=suffix)
    return _StoredFile(sha256=digest, size_bytes=size, blob_name=blob_name)


def _contribution_create(
    *, user: User, datanet: Datanet, stored: _StoredFile, filename: str, source: str, column_map: dict[str, str]
) -> ContributionResult:
    """The contribution for stored bytes, or the earlier one with the same bytes. Call inside transaction.atomic."""
    existing = (
        Contribution.objects.select_related("contributor").filter(datanet=datanet, file_sha256=stored.sha256).first()
    )
    if existing is not None and existing.status == Contribution.Status.FAILED and existing.contributor_id == user.pk:
        return _contribution_retry(existing, user=user, filename=filename, column_map=column_map)
    if existing is not None:
        return ContributionResult(existing, False)
    if stored.blob_name is None:  # contributions are never deleted on their own: only with their Datanet
        raise Conflict("The earlier copy of this file is gone: upload it again.")
    job = job_create(kind="ingest", user=user, message="Waiting for a worker")
    try:
        with transaction.atomic():
            contribution = Contribution.objects.create(
                datanet=datanet,
                contributor=user,
                source=source,
                filename=filename,
                file_sha256=stored.sha256,
                blob_name=stored.blob_name,
                size_bytes=stored.size_bytes,
                column_map=column_map,
                job=job,
            )
    except IntegrityError:  # the same file, uploaded at the same moment by a second request
        job.delete()
        return ContributionResult(Contribution.objects.get(datanet=datanet, file_sha256=stored.sha256), False)
    job.target_id = str(contribution.pk)
    job.save(update_fields=["target_id"])
    audit_record(
        actor=user,
        action="contribution.create",
        target=contribution,
        after={"filename": filename, "sha256": stored.sha256, "size": contribution.size_bytes, "datanet": datanet.slug},
    )
    job_enqueue(job)
    return ContributionResult(contribution, True)


def _contribution_retry(
    contribution: Contribution, *, user: User, filename: str, column_map: dict[str, str]
) -> ContributionResult:
    """Its contributor uploads a failed file again (perhaps renamed, perhaps with a column map): the same
    contribution is read again from the start. A failed contribution read no row, so nothing is counted twice."""
    job = job_create(kind="ingest", target_id=contribution.pk, user=user, message="Waiting for a worker")
    retried = Contribution.objects.filter(pk=contribution.pk, status=Contribution.Status.FAILED).update(
        filename=filename, column_map=column_map, status=Contribution.Status.QUEUED, error="", job=job, last_line=0
    )
    if not retried:  # a second request retried it a moment ago
        job.delete()
        contribution.refresh_from_db()
        return ContributionResult(contribution, False)
    contribution.refresh_from_db()
    audit_record(
        actor=user,
        action="contribution.retry",
        target=contribution,
        after={"filename": filename, "column_map": column_map},
    )
    job_enqueue(job)
    return ContributionResult(contribution, True)
