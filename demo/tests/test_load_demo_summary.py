"""What ``load_demo`` prints (issue 15): both Datanets, the queued run and where to look, not one line."""

from __future__ import annotations

import pytest

from accounts.tests.factories import UserFactory
from core.models import Job
from datanets.tests.factories import DatanetFactory
from demo.loader import DEMO_MODEL, DEMO_SLUG, QA_SLUG, demo_summary
from models_factory.models import MLModel, TrainingRun
from models_factory.tests.factories import snapshot_with

pytestmark = pytest.mark.django_db


def test_the_summary_names_both_datanets_the_queued_run_and_where_to_look() -> None:
    datanet, snapshot = snapshot_with([{"text": "good", "label": "positive"}], title="Drug reviews", slug=DEMO_SLUG)
    DatanetFactory(title="Drug conditions Q&A", slug=QA_SLUG, record_kind="qa", labels=[])
    owner = UserFactory()
    model = MLModel.objects.create(name=DEMO_MODEL, slug="drug-review-sentiment", datanet=datanet, builder=owner)
    TrainingRun.objects.create(
        ml_model=model,
        snapshot=snapshot,
        base_model="minilm",
        method="head",
        job=Job.objects.create(kind="train"),
        created_by=owner,
    )
    text = demo_summary(train_model=True)
    assert text.startswith("Loaded the demo:\n")
    assert f"Datanet 'Drug reviews' at /d/{DEMO_SLUG}/: 1 records, 1 approved" in text
    assert f"Datanet 'Drug conditions Q&A' at /d/{QA_SLUG}/" in text
    assert "at /models/drug-review-sentiment/: its first training run is queued" in text
    assert "/rewards/" in text and "'datanets-demo'" in text
    TrainingRun.objects.all().delete()
    MLModel.objects.all().delete()
    assert "No training run queued (--no-train)" in demo_summary(train_model=False)
