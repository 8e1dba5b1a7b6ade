"""The demo as `make run` loads it: its queued model trains, is indexed, and the epoch valuation finds bob's planted
label flips (the done-when of Proof of Attribution). Slow: it trains on the 600 real reviews."""

from __future__ import annotations

import pytest

from attribution.indexes import index_build
from attribution.models import AttributionIndex, Flag
from attribution.valuation import valuation_run
from core.models import Job
from datanets.models import Datanet, Record
from demo.loader import DEMO_MODEL, DEMO_SLUG, PLANTED_LINES, drug_reviews, load_demo
from models_factory import predictors
from models_factory import services as mf
from models_factory.models import ModelVersion, TrainingRun

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_demo_model_trains_and_its_valuation_flags_the_planted_flips() -> None:
    load_demo()
    load_demo()  # idempotent: still one Datanet and one queued run
    datanet = Datanet.objects.get(slug=DEMO_SLUG)
    run = TrainingRun.objects.get(ml_model__name=DEMO_MODEL)
    assert run.job.status == Job.Status.QUEUED and run.snapshot.datanet_id == datanet.pk

    original = drug_reviews("train")[300:]
    bob = Record.objects.filter(datanet=datanet, contributor__username="bob")
    for line in PLANTED_LINES:
        stored = bob.get(line_no=line)
        assert stored.label != original[line - 1]["label"]
        assert {stored.label, original[line - 1]["label"]} == {"positive", "negative"}
    assert bob.exclude(line_no__in=PLANTED_LINES).filter(line_no=1).get().label == original[0]["label"]

    mf.training_run_execute(job_id=str(run.job_id))
    version = ModelVersion.objects.get(run=run)
    _check_card_beats_baselines(version)
    index = AttributionIndex.objects.get(version=version)
    index_build(job_id=str(index.job_id))
    index.refresh_from_db()
    assert index.status == "ready"
    job = Job.objects.get(kind="valuation", target_id=str(version.pk))
    valuation_run(job_id=str(job.pk))
    job.refresh_from_db()
    assert job.status == "succeeded", job.error

    planted = set(bob.filter(line_no__in=PLANTED_LINES).values_list("pk", flat=True))
    in_train = set(version.snapshot.entries.filter(split="train").values_list("record_id", flat=True))
    flags = Flag.objects.filter(version=version)
    flagged = set(flags.values_list("record_id", flat=True))
    found = planted & in_train & flagged
    # Measured with the head-only demo model: 9 of the 10 planted flips that land in the training split, with 42 flags
    # over 507 records (the earlier rule: 8 with 54; benchmarks/attribution/demo_flips.py --platform). The fine-tuned
    # default fits more of the flips it trains on, so fewer stand out (6 of 10 with the earlier rule).
    assert len(found) >= 0.6 * len(planted & in_train), (len(found), len(planted & in_train))
    assert len(flagged) <= 0.15 * len(in_train)
    for flag in flags.filter(record_id__in=found):
        assert flag.evidence["label"] in {"positive", "negative"} and flag.reason


# The playground examples. The negative one must come out right or say that it is unsure; the neutral one
# must at least not be a confident "positive" (the top-2 recipe answered it negative at 57%).
NEGATIVE = "This medication made me feel terrible, constant nausea and headaches, I stopped after a week."
NEUTRAL = "It worked for a while, but side effects were about as bad as the condition."


def _check_card_beats_baselines(version: ModelVersion) -> None:
    """The demo model's card (its default recipe, on the demo's own validation split) reports the three baselines
    and a per-class report, and beats the majority class; the playground examples are right or flagged
    low-confidence. Beating tf-idf and the frozen-encoder baseline is measured in benchmarks/training/."""
    metrics = version.metrics
    assert version.method == "finetune"
    assert set(metrics["baselines"]) == {"majority", "tfidf_lr", "frozen_encoder_lr"}
    majority = metrics["baselines"]["majority"]
    assert metrics["accuracy"] > majority["accuracy"] and metrics["macro_f1"] > majority["macro_f1"]
    assert metrics["beats_majority"] is True and set(metrics["beats_baselines"]) == set(metrics["baselines"])
    assert len(metrics["labels_predicted"]) >= 2
    assert set(metrics["per_label"]) == {"negative", "neutral", "positive"}
    predictor = predictors.classifier_predictor(version)
    negative, neutral = predictor.predict_detailed([NEGATIVE, NEUTRAL])
    assert negative["label"] == "negative" or negative["low_confidence"], negative
    assert neutral["label"] != "positive" or neutral["low_confidence"], neutral
    # The artifact serves what the card measured: its predictions on the validation split give the card's accuracy.
    val = (
        version.snapshot.entries.filter(split="validation").order_by("position").values_list("record__data", flat=True)
    )
    rows = list(val)
    served = predictor.predict([r["text"] for r in rows])
    accuracy = sum(label == r["label"] for (label, _), r in zip(served, rows, strict=True)) / len(rows)
    assert abs(accuracy - metrics["accuracy"]) < 1e-9
