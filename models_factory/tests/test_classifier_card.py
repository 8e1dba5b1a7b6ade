"""A classifier's card and serving as a builder and a consumer see them: the default recipe's baselines and per-class
report, the deploy gate for a model that does not beat the majority class, truncation and low confidence."""

from __future__ import annotations

import pytest

from accounts.credits import credits_grant
from accounts.tests.factories import UserFactory
from core.errors import UserError
from models_factory import services
from models_factory.models import ModelVersion
from models_factory.serving.classifier import low_confidence
from models_factory.tests.factories import sentiment_records, snapshot_with

pytestmark = pytest.mark.django_db


@pytest.fixture
def version() -> ModelVersion:
    datanet, snapshot = snapshot_with(sentiment_records(), labels=["negative", "positive"])
    model = services.model_create(builder=datanet.owner, datanet_slug=datanet.slug, name="Sentiment")
    # No method: the default recipe, made small for the test.
    run = services.training_run_create(
        actor=datanet.owner, ml_model=model, snapshot=snapshot, hyperparameters={"epochs": 2, "max_length": 32}
    )
    services.training_run_execute(job_id=str(run.job_id))
    run.job.refresh_from_db()
    assert run.job.status == "succeeded", run.job.error
    return ModelVersion.objects.get(run=run)


def test_the_default_recipe_reports_baselines_and_a_per_class_report(version: ModelVersion, client) -> None:
    assert version.method == "finetune"
    metrics = version.metrics
    assert set(metrics["baselines"]) == {"majority", "tfidf_lr", "frozen_encoder_lr"}
    for baseline in metrics["baselines"].values():
        assert 0.0 <= baseline["accuracy"] <= 1.0 and set(baseline["per_label"]) <= {"negative", "positive"}
    assert set(metrics["per_label"]) == {"negative", "positive"}
    assert "examples_per_s" not in metrics and metrics["training"]["examples_per_s"] >= 0
    assert metrics["training"]["max_length"] <= 32
    client.force_login(version.ml_model.builder)
    page = client.get(version.get_absolute_url()).content.decode()
    assert 'data-testid="baselines"' in page and "majority class" in page and 'data-testid="per-class"' in page


def test_deploying_a_version_below_the_majority_class_needs_confirmation(version: ModelVersion, client) -> None:
    metrics = dict(version.metrics)
    metrics.update(beats_majority=False, n_validation=50, accuracy=0.5, macro_f1=0.33)
    metrics["baselines"] = {**metrics["baselines"], "majority": {"accuracy": 0.6, "macro_f1": 0.37}}
    ModelVersion.objects.filter(pk=version.pk).update(metrics=metrics)
    version.refresh_from_db()
    owner = version.ml_model.builder
    with pytest.raises(UserError, match="does not beat the majority class") as refused:
        services.version_deploy(actor=owner, version=version, deployed=True, price_credits=1)
    assert refused.value.extra["code"] == "below_majority_baseline"
    version.refresh_from_db()
    assert not version.deployed

    client.force_login(owner)
    response = client.post(
        f"/api/models/{version.pk}/deploy/", {"deployed": True, "price_credits": 1}, "application/json"
    )
    assert response.status_code == 400 and response.json()["code"] == "below_majority_baseline"
    assert "0.500 vs 0.600" in response.json()["detail"]
    page = client.get(version.get_absolute_url()).content.decode()
    assert 'data-testid="below-majority"' in page and 'name="confirm"' in page
    response = client.post(
        f"/api/models/{version.pk}/deploy/", {"deployed": True, "price_credits": 1, "confirm": True}, "application/json"
    )
    assert response.status_code == 200 and response.json()["deployed"] is True


def test_long_inputs_are_truncated_as_in_training_and_only_huge_ones_refused(version: ModelVersion) -> None:
    owner = version.ml_model.builder
    version = services.version_deploy(actor=owner, version=version, deployed=True, price_credits=1, confirm=True)
    consumer = UserFactory()
    credits_grant(actor=None, user=consumer, amount=10)
    long_text = "terrible headaches and nausea every day " * 400
    inference = services.infer(consumer=consumer, version_id=version.pk, payload={"text": long_text})
    out = inference.output
    assert out["truncated"] is True and out["tokens_kept"] == version.metrics["training"]["max_length"]
    assert out["tokens_in"] > 1000 and isinstance(out["low_confidence"], bool)
    short = services.infer(consumer=consumer, version_id=version.pk, payload={"text": "very happy with it"}).output
    assert short["truncated"] is False and short["tokens_kept"] == short["tokens_in"]
    with pytest.raises(UserError, match="100,000") as refused:
        services.infer(consumer=consumer, version_id=version.pk, payload={"text": "a" * 100_001})
    assert refused.value.extra["code"] == "input_too_long"


def test_low_confidence_means_near_chance_or_a_near_tie() -> None:
    assert low_confidence([0.40, 0.35, 0.25])  # top below 1/3 + 0.15
    assert low_confidence([0.52, 0.46, 0.02])  # top two within 0.10
    assert not low_confidence([0.70, 0.20, 0.10])
    assert not low_confidence([0.80, 0.20])
    assert low_confidence([0.60, 0.40])  # two labels: chance is 0.5, and 0.60 is within 0.15 of it
