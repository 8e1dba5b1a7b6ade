"""Snapshots: publish an immutable, content-hashed version of the approved records, and export it as a file."""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.db import transaction

from accounts.audit import audit_record
from accounts.models import User
from core.bulk import bulk_insert
from core.errors import Conflict, Forbidden, NotFound, UserError
from core.events import event_emit
from core.jobs import JobProgress, job_create, job_enqueue, job_run, job_succeed
from core.models import Job
from core.storage import blob_put_file
from datanets import selectors
from datanets.ingest.manifest import merkle_root_sha256
from datanets.models import Datanet, Record, Snapshot, SnapshotExport, SnapshotRecord

# Records per export query and progress update.
EXPORT_CHUNK = 5000


def split_of(record_hash: str, validation_percent: int) -> str:
    """Deterministic split by record hash: the same record lands in the same split in every version."""
    return "validation" if int(record_hash[:8], 16) % 100 < validation_percent else "train"


def _manifest_lines(rows: list[tuple[int, str, int, str]], splits: list[str]) -> Iterator[str]:
    # canonical_json of {"position", "record_hash", "record_id", "split"}: sorted keys, no spaces; a hash is hex and
    # a split a fixed word, so nothing needs escaping (a test checks the lines against canonical_json).
    for position, ((rid, digest, _, _), split) in enumerate(zip(rows, splits)):
        yield f'{{"position":{position},"record_hash":"{digest}","record_id":{rid},"split":"{split}"}}\n'


def snapshot_publish(*, actor: User, datanet: Datanet, notes: str = "", validation_percent: int = 10) -> Snapshot:
    """Publish the approved records as the next version: one read of (id, hash, contributor id, label) in canonical
    order, the root, the card, the manifest written to a file as it is built, and the entries by COPY."""
    if not selectors.is_owner(actor, datanet):
        raise Forbidden("Only the Datanet's owner can publish snapshots.")
    if not 0 <= validation_percent <= 50:
        raise UserError("The validation split must be between 0 and 50 percent.")
    with transaction.atomic():
        datanet = Datanet.objects.select_for_update().get(pk=datanet.pk)
        rows = list(
            Record.objects.filter(datanet=datanet, status=Record.Status.APPROVED)
            .order_by("content_hash")
            .values_list("id", "content_hash", "contributor_id", "label")
        )
        if not rows:
            raise UserError("Nothing to publish: no record is approved yet. Review pending records first.")
        hashes = [h for _, h, _, _ in rows]
        root = merkle_root_sha256(hashes)
        last = Snapshot.objects.filter(datanet=datanet).order_by("-version").first()
        if last is not None and last.root == root:
            raise Conflict(f"Nothing changed since version {last.version} (same root): approve more records first.")
        version = (last.version + 1) if last else 1
        splits = [split_of(h, validation_percent) for h in hashes]
        del hashes
        # Counted by id and named afterwards (one small query), not joined to the user table for every row.
        per_contributor = Counter(user_id for _, _, user_id, _ in rows)
        names = dict(User.objects.filter(pk__in=per_contributor).values_list("id", "username"))
        labels = Counter(label for _, _, _, label in rows if label)
        n_validation = splits.count("validation")
        card = {
            "title": datanet.title,
            "domain": datanet.domain,
            "license": datanet.license,
            "record_kind": datanet.record_kind,
            "records": len(rows),
            "train": len(rows) - n_validation,
            "validation": n_validation,
            "labels": dict(sorted(labels.items())),
            "contributors": [{"username": names[u], "records": n} for u, n in per_contributor.most_common()],
            "root": root,
            "hash": "sha256 of canonical JSON per record; root: sha256 Merkle tree over hashes sorted ascending",
        }
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "manifest.jsonl"
            with open(path, "w", encoding="utf-8", newline="") as fh:
                fh.writelines(_manifest_lines(rows, splits))
            manifest_name, _ = blob_put_file(path, suffix=".manifest.jsonl")
        snapshot = Snapshot.objects.create(
            datanet=datanet,
            version=version,
            root=root,
            record_count=len(rows),
            train_count=card["train"],
            validation_count=card["validation"],
            validation_percent=validation_percent,
            manifest_name=manifest_name,
            card=card,
            notes=notes.strip(),
            published_by=actor,
        )
        snapshot_id = snapshot.pk
        bulk_insert(
            SnapshotRecord,
            ((snapshot_id, rid, i, s) for i, ((rid, _, _, _), s) in enumerate(zip(rows, splits))),
            fields=("snapshot", "record", "position", "split"),
            batch_size=5000,
        )
        audit_record(
            actor=actor,
            action="snapshot.publish",
            target=snapshot,
            after={"version": version, "root": root, "records": len(rows)},
        )
        event_emit(
            "snapshot.published",
            datanet_id=datanet.pk,
            public=datanet.is_public,
            data={
                "datanet": datanet.slug,
                "snapshot": snapshot.pk,
                "version": version,
                "root": root,
                "records": len(rows),
                "published_at": snapshot.published_at.isoformat(),
            },
        )
    return snapshot


def snapshot_export_request(*, actor: User, snapshot: Snapshot, fmt: str) -> SnapshotExport:
    if fmt not in SnapshotExport.Format.values:
        raise UserError("Export format must be 'jsonl' or 'parquet'.")
    if not selectors.can_view(actor, snapshot.datanet):
        # Answered like a missing snapshot: a 403 would tell a stranger that the private Datanet exists.
        raise NotFound(f"There is no snapshot #{snapshot.pk}.")
    with transaction.atomic():
        export, created = SnapshotExport.objects.select_for_update().get_or_create(snapshot=snapshot, format=fmt)
        if created or (not export.ready and (export.job is None or export.job.status == Job.Status.FAILED)):
            job = job_create(kind="export", target_id=export.pk, user=actor, message="Waiting for a worker")
            export.job = job
            export.save(update_fields=["job"])
            job_enqueue(job)
    return export


def snapshot_export_run(*, job_id: str) -> None:
    job_run(job_id, _export)


def _export(job: Job) -> None:
    from datanets.ingest.export import write_jsonl, write_parquet

    export = SnapshotExport.objects.select_related("snapshot__datanet").get(pk=job.target_id)
    snapshot = export.snapshot
    progress = JobProgress(job, total=snapshot.record_count, unit="records")
    fields = [f.name for f in snapshot.datanet.kind.fields]

    def rows() -> Iterator[dict[str, Any]]:
        # Streamed in position ranges: each chunk is one short indexed query (snapshot, position), so memory stays
        # flat, no cursor is held open across the whole export, and progress is written after every chunk.
        entries = SnapshotRecord.objects.filter(snapshot=snapshot).order_by("position")
        for start in range(0, snapshot.record_count, EXPORT_CHUNK):
            chunk = entries.filter(position__gte=start, position__lt=start + EXPORT_CHUNK).values_list(
                "record__data", "record__content_hash", "record__id", "record__contributor__username", "split"
            )
            for data, digest, rid, user, split in chunk:
                row = {name: data.get(name, "") for name in fields}
                row.update({"record_id": rid, "record_hash": digest, "contributor": user, "split": split})
                yield row
            progress.update(min(snapshot.record_count, start + EXPORT_CHUNK))

    suffix = f".v{snapshot.version}.{export.format}"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"export{suffix}"
        (write_jsonl if export.format == "jsonl" else write_parquet)(rows(), out)
        blob_name, digest = blob_put_file(out, suffix=suffix)
        export.blob_name, export.sha256, export.size_bytes = blob_name, digest, out.stat().st_size
        export.save(update_fields=["blob_name", "sha256", "size_bytes"])
    job_succeed(job=job, result={"blob": blob_name, "sha256": digest}, message="Export ready to download")
