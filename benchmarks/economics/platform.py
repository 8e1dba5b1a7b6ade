"""The platform as the simulation sees it: every call goes to a real service (or selector) of the project.

The one module that imports Django and the apps, so a service that changes name or signature is fixed here only.
``boot`` points Django at a temporary folder (SQLite database, media, filesystem broker: the embedded defaults with
the test suite's settings) and migrates once; ``reset`` gives each seed a fresh copy of the migrated database.
Jobs that a worker would run (ingestion, training, attribution index, valuation) run inline, by the same task
bodies a worker calls.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
_TEMPLATE = "template.sqlite3"


def boot(var_dir: Path) -> None:
    """Set Django up on a private SQLite database under ``var_dir`` and migrate it (once per process)."""
    var_dir.mkdir(parents=True, exist_ok=True)
    for name in ("DATABASE_URL", "REDIS_URL", "CACHE_URL", "S3_BUCKET"):
        os.environ.pop(name, None)  # the embedded defaults, whatever the shell says
    os.environ["DATANETS_VAR_DIR"] = str(var_dir)
    os.environ["DATANETS_BROKER_DIR"] = str(var_dir / "broker")
    os.environ["MEDIA_ROOT"] = str(var_dir / "media")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings_test"
    os.environ.setdefault("DATANETS_DEV", "1")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0, interactive=False)
    connection.close()
    db = Path(connection.settings_dict["NAME"])
    shutil.copyfile(db, var_dir / _TEMPLATE)


def reset(var_dir: Path) -> None:
    """A fresh, migrated, empty database and media folder for the next seed."""
    from django.core.cache import cache
    from django.db import connection

    connection.close()
    db = Path(connection.settings_dict["NAME"])
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    shutil.copyfile(var_dir / _TEMPLATE, db)
    shutil.rmtree(var_dir / "media", ignore_errors=True)
    (var_dir / "media").mkdir()
    cache.clear()


@dataclass(frozen=True)
class PendingRecord:
    id: int
    contributor: str
    text: str
    label: str


@dataclass(frozen=True)
class OpenFlag:
    id: int
    record_id: int
    contributor: str
    text: str
    label: str


class Platform:
    """One Datanet with its owner, curators and an admin, driven through the services."""

    def __init__(self, *, curators: list[str], approvals_needed: int = 2) -> None:
        from accounts.models import User
        from datanets import services

        self._users: dict[str, Any] = {}
        self.owner = self.user("owner")
        self.admin = self.user("admin")
        self.admin.is_staff = True
        self.admin.save(update_fields=["is_staff"])
        self.datanet = services.datanet_create(
            owner=self.owner,
            title="Medication reviews",
            slug="med-reviews",
            domain="medical",
            description="Patient reviews labeled by sentiment (the economics simulation's synthetic set).",
            license="CC-BY-4.0",
            guidelines="One review per record; label positive or negative as the patient felt.",
            record_kind="labeled_text",
            labels=["negative", "positive"],
            approvals_needed=approvals_needed,
            rejections_needed=approvals_needed,
            curators=[self.user(c) for c in curators],
        )
        self._user_model = User

    # ---- accounts and credits ------------------------------------------------------------------------------

    def user(self, name: str) -> Any:
        if name not in self._users:
            from accounts.models import User

            self._users[name] = User.objects.create_user(username=name, email=f"{name}@sim.example", password="x")
        return self._users[name]

    def grant(self, name: str, credits: int) -> None:
        from accounts.credits import credits_grant

        credits_grant(actor=None, user=self.user(name), amount=credits)

    # ---- contributions and review --------------------------------------------------------------------------

    def upload(self, name: str, rows: list[tuple[str, str]]) -> None:
        """One paste of JSON Lines, ingested (exact and near-duplicate detection) as a worker would."""
        import json

        from core.errors import UserError
        from datanets import services

        if not rows:
            return
        text = "".join(json.dumps({"text": t, "label": label}) + "\n" for t, label in rows)
        try:
            result = services.contribution_from_paste(user=self.user(name), datanet=self.datanet, text=text)
        except UserError:
            return  # refused (the same bytes already pasted, say): nothing stored, effort still spent
        job = result.contribution.job
        if job is not None and job.kind == "ingest":
            services.contribution_ingest(job_id=str(job.id))

    def pending(self) -> list[PendingRecord]:
        from datanets.models import Record

        rows = (
            Record.objects.filter(datanet=self.datanet, status=Record.Status.PENDING)
            .order_by("id")
            .values_list("id", "contributor__username", "data", "label")
        )
        return [PendingRecord(pk, who, data.get("text", ""), label) for pk, who, data, label in rows]

    def voters(self, record_id: int) -> set[str]:
        from datanets.models import Vote

        return set(Vote.objects.filter(record_id=record_id).values_list("curator__username", flat=True))

    def requested_curator(self, record_id: int) -> str | None:
        """The curator an adaptive-quorum request reserves the record's next vote for, if any."""
        from datanets import selectors
        from datanets.models import Record

        request = selectors.vote_request_open(Record.objects.get(pk=record_id))
        return request.curator.username if request is not None else None

    def vote(self, curator: str, record_id: int, decision: str) -> str | None:
        """The record's status after the vote, or None when the vote was refused (not needed, not theirs)."""
        from core.errors import Conflict, Forbidden
        from datanets import services

        reason = "" if decision == "approve" else "does not match the guidelines"
        try:
            return services.vote_cast(curator=self.user(curator), record_id=record_id, decision=decision, reason=reason)
        except (Conflict, Forbidden):
            return None

    # ---- snapshots, models, inference ----------------------------------------------------------------------

    def publish(self, *, validation_percent: int = 20) -> int | None:
        from core.errors import UserError
        from datanets import services

        try:
            return services.snapshot_publish(
                actor=self.owner, datanet=self.datanet, validation_percent=validation_percent
            ).version
        except UserError:
            return None  # nothing approved yet

    def public_records(self) -> list[tuple[str, str]]:
        """(text, label) of the newest snapshot: published data anyone may read."""
        from datanets.models import SnapshotRecord

        snapshot = self.datanet.snapshots.order_by("-version").first()
        if snapshot is None:
            return []
        rows = SnapshotRecord.objects.filter(snapshot=snapshot).values_list("record__data", "record__label")
        return [(d.get("text", ""), label) for d, label in rows]

    def train(
        self, builder: str, *, model_name: str, snapshot_version: int | None = None, hyperparameters: dict[str, Any]
    ) -> int | None:
        """Train a head-only classifier on a snapshot (the newest by default), deploy it, build its attribution index
        and run its valuation, each by the job body a worker runs. The version's id, or None when refused."""
        from attribution import indexes, valuation
        from core.errors import UserError
        from core.models import Job
        from models_factory import services as mf
        from models_factory.models import MLModel, ModelVersion

        user = self.owner if builder == "owner" else self.user(builder)
        snapshots = self.datanet.snapshots.order_by("-version")
        snapshot = snapshots.filter(version=snapshot_version).first() if snapshot_version else snapshots.first()
        if snapshot is None:
            return None
        model = MLModel.objects.filter(datanet=self.datanet, builder=user, name=model_name).first()
        if model is None:
            model = mf.model_create(builder=user, datanet_slug=self.datanet.slug, name=model_name)
        try:
            run = mf.training_run_create(
                actor=user, ml_model=model, snapshot=snapshot, method="head", hyperparameters=hyperparameters
            )
        except UserError:
            return None
        mf.training_run_execute(job_id=str(run.job_id))
        version = ModelVersion.objects.filter(run=run).first()
        if version is None:
            return None
        # A builder who means to deploy confirms the platform's "does not beat the majority class" warning: the bad
        # builder does so on purpose, and an honest one's small model may tie the majority on a tiny validation split.
        mf.version_deploy(actor=user, version=version, deployed=True, confirm=True)
        for kind, body in (("attribution_index", indexes.index_build), ("valuation", valuation.valuation_run)):
            for job in Job.objects.filter(kind=kind, target_id=str(version.pk), status=Job.Status.QUEUED):
                body(job_id=str(job.pk))
        return version.pk

    def infer(self, consumer: str, version_id: int, text: str) -> tuple[str | None, int]:
        """(receipt id or None, credits charged) for one paid inference."""
        from core.errors import UserError
        from models_factory import services as mf

        try:
            inference = mf.infer(consumer=self.user(consumer), version_id=version_id, payload={"text": text})
        except UserError:
            return None, 0
        receipt = getattr(inference, "receipt_obj", None)
        return (receipt.id if receipt is not None else None), int(inference.fee)

    # ---- valuation flags -----------------------------------------------------------------------------------

    def open_flags(self) -> list[OpenFlag]:
        from attribution.models import Flag

        rows = (
            Flag.objects.filter(record__datanet=self.datanet, status=Flag.Status.OPEN)
            .order_by("id")
            .values_list("id", "record_id", "record__contributor__username", "record__data", "record__label")
        )
        return [OpenFlag(pk, rid, who, data.get("text", ""), label) for pk, rid, who, data, label in rows]

    def resolve_flag(self, curator: str, flag_id: int, decision: str) -> bool:
        from attribution import valuation
        from core.errors import Conflict, Forbidden

        try:
            valuation.flag_resolve(actor=self.user(curator), flag_id=flag_id, decision=decision)
        except (Conflict, Forbidden):
            return False
        return True

    # ---- epochs and money ----------------------------------------------------------------------------------

    def fund_pool(self, credits: int) -> None:
        from settlement import rewards

        self.grant("owner", credits)
        rewards.pool_fund(actor=self.owner, datanet=self.datanet, amount_credits=credits)

    def close_epoch(self) -> None:
        from settlement import epochs, rewards

        epochs.epoch_close(actor=self.admin, number=rewards.epoch_open_get().number)

    def earnings(self) -> dict[str, dict[str, float]]:
        """Credits' worth paid to each account, by ledger kind (contributor, curator, builder, pool; withheld shown
        apart), over every closed epoch."""
        from collections import defaultdict

        from settlement.chain.config import token_units_per_credit
        from settlement.models import LedgerEntry

        units = token_units_per_credit()
        out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        rows = LedgerEntry.objects.filter(account__isnull=False).values_list("account__username", "kind", "amount")
        for who, kind, amount in rows.iterator():
            out[who][kind] += int(amount) / units
        return {k: dict(v) for k, v in out.items()}

    def earned_from_receipts(self, names: list[str], receipt_ids: list[str]) -> float:
        """Credits' worth the accounts were paid from these receipts' fees (contributor and builder parts)."""
        from settlement.chain.config import token_units_per_credit
        from settlement.models import LedgerEntry

        rows = LedgerEntry.objects.filter(receipt_id__in=receipt_ids, account__username__in=names).values_list(
            "amount", flat=True
        )
        return sum(int(a) for a in rows) / token_units_per_credit()

    def approved_by(self) -> dict[str, int]:
        from django.db.models import Count

        from datanets.models import Record

        rows = (
            Record.objects.filter(datanet=self.datanet, status=Record.Status.APPROVED)
            .order_by()
            .values_list("contributor__username")
            .annotate(n=Count("id"))
        )
        return dict(rows)

    def status_counts(self) -> dict[str, dict[str, int]]:
        """Per contributor: records by status (approved, rejected, duplicate, near_duplicate, pending)."""
        from collections import defaultdict

        from django.db.models import Count

        from datanets.models import Record

        out: dict[str, dict[str, int]] = defaultdict(dict)
        rows = Record.objects.filter(datanet=self.datanet).order_by().values_list("contributor__username", "status")
        for who, status, n in rows.annotate(n=Count("id")):
            out[who][status] = n
        return dict(out)

    def deciding_version(self) -> int | None:
        """The version whose valuation decides the Datanet's pools and penalties."""
        from attribution.selectors import valuing_version

        version, _ = valuing_version(self.datanet)
        return version.pk if version is not None else None

    def pool_weight_share(self, version_id: int, names: list[str]) -> float:
        """The accounts' share of positive KNN-Shapley value under one version (what a pool split follows)."""
        from attribution.models import RecordValuation

        rows = RecordValuation.objects.filter(version_id=version_id, knn_shapley__gt=0).values_list(
            "record__contributor__username", "knn_shapley"
        )
        total = sum(v for _, v in rows)
        mine = sum(v for who, v in rows if who in names)
        return mine / total if total else 0.0

    def penalty_points(self) -> dict[str, int]:
        from settlement.penalties import points_by_account

        points = points_by_account(self.datanet)
        names = dict(self._user_model.objects.filter(pk__in=list(points)).values_list("pk", "username"))
        return {names[k]: v for k, v in points.items() if k in names}
