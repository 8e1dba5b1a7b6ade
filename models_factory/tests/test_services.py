"""Model Factory through its services: validation, training, registry with lineage, deploy, paid inference."""

from __future__ import annotations

import pytest

from accounts.credits import credits_grant
from accounts.models import AuditEvent, CreditAccount
from accounts.tests.factories import UserFactory
from core.errors import Conflict, Forbidden, UserError
from core.models import Job
from models_factory import services
from models_factory.models import Inference, ModelVersion
from models_factory.tests.factories import qa_records, sentiment_records, snapshot_with

pytestmark = pytest.mark.django_db

FAST = {"epochs": 2, "batch_size": 8, "max_length": 32}


@pytest.fixture
def classifier_setup():
    datanet, snapshot = snapshot_with(sentiment_records(), labels=["negative", "positive"])
    model = services.model_create(builder=datanet.owner, datanet_slug=datanet.slug, name="Sentiment")
    return datanet, snapshot, model


def train(model, snapshot, **kwargs):
    run = services.training_run_create(actor=model.builder, ml_model=model, snapshot=snapshot, **kwargs)
    services.training_run_execute(job_id=str(run.job_id))
    run.job.refresh_from_db()
    return run


def test_bad_training_requests_are_refused_with_reasons(classifier_setup, tmp_path):
    datanet, snapshot, model = classifier_setup
    owner = model.builder
    with pytest.raises(UserError, match="epochs must be between 1 and 100"):
        services.training_run_create(actor=owner, ml_model=model, snapshot=snapshot, hyperparameters={"epochs": 0})
    with pytest.raises(UserError, match="lr must be in"):
        services.training_run_create(actor=owner, ml_model=model, snapshot=snapshot, hyperparameters={"lr": 5})
    with pytest.raises(UserError, match="unknown hyperparameters: lrr"):
        services.training_run_create(actor=owner, ml_model=model, snapshot=snapshot, hyperparameters={"lrr": 1})
    with pytest.raises(UserError, match="neither a packaged model"):
        services.training_run_create(actor=owner, ml_model=model, snapshot=snapshot, base_model="/no/such/model")
    with pytest.raises(UserError, match="method finetune, head or full"):
        services.training_run_create(actor=owner, ml_model=model, snapshot=snapshot, method="lora")
    with pytest.raises(Forbidden):
        services.training_run_create(actor=UserFactory(), ml_model=model, snapshot=snapshot)
    _, tiny = snapshot_with(sentiment_records(3), labels=["negative", "positive"])
    tiny_model = services.model_create(builder=tiny.datanet.owner, datanet_slug=tiny.datanet.slug, name="t")
    with pytest.raises(UserError, match="at least 4"):
        services.training_run_create(actor=tiny.datanet.owner, ml_model=tiny_model, snapshot=tiny)
    _, single = snapshot_with(
        [{"text": f"only good {i}", "label": "positive"} for i in range(6)], labels=["negative", "positive"]
    )
    single_model = services.model_create(builder=single.datanet.owner, datanet_slug=single.datanet.slug, name="s")
    with pytest.raises(UserError, match="single label"):
        services.training_run_create(actor=single.datanet.owner, ml_model=single_model, snapshot=single)


def test_base_model_folder_that_is_not_a_model_fails_the_run_readably(classifier_setup, tmp_path, settings):
    _, snapshot, model = classifier_setup
    settings.MODEL_BASE_DIRS = [str(tmp_path)]
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "notes.txt").write_text("not a model")
    run = train(model, snapshot, base_model=str(tmp_path / "notes"), hyperparameters=FAST)
    assert run.job.status == Job.Status.FAILED
    assert "not" in run.job.error.lower() and "model" in run.job.error.lower()
    assert not ModelVersion.objects.exists()


def test_classifier_trains_registers_with_lineage_and_serves_for_credits(classifier_setup):
    datanet, snapshot, model = classifier_setup
    run = train(model, snapshot, hyperparameters={**FAST, "epochs": 4})
    assert run.job.status == Job.Status.SUCCEEDED, run.job.error
    version = ModelVersion.objects.get(run=run)
    assert version.version == 1 and version.snapshot_root == snapshot.root
    assert version.base_model_id.endswith("all-MiniLM-L6-v2") and len(version.base_model_sha256) == 64
    assert version.hyperparameters["epochs"] == 4 and version.seeds == {"seed": 0}
    assert "torch" in version.library_versions and version.artifact_size_bytes > 0
    assert {"accuracy", "macro_f1"} <= set(version.metrics)
    run.refresh_from_db()
    assert run.loss_history and run.total_steps > 0

    consumer = UserFactory()
    with pytest.raises(Conflict, match="not deployed"):
        services.infer(consumer=consumer, version_id=version.pk, payload={"text": "hello"})
    services.version_deploy(actor=model.builder, version=version, deployed=True, price_credits=3)
    with pytest.raises(UserError, match="costs 3 credits and your balance is 0"):
        services.infer(consumer=consumer, version_id=version.pk, payload={"text": "great"})
    credits_grant(actor=None, user=consumer, amount=5)
    inference = services.infer(consumer=consumer, version_id=version.pk, payload={"text": "works great, very happy"})
    assert inference.output["label"] in {"negative", "positive"}
    assert sum(inference.output["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert inference.fee == 3 and CreditAccount.objects.get(user=consumer).balance == 2
    with pytest.raises(UserError, match="costs 3 credits and your balance is 2"):
        services.infer(consumer=consumer, version_id=version.pk, payload={"text": "again"})
    with pytest.raises(UserError, match="non-empty"):
        services.infer(consumer=consumer, version_id=version.pk, payload={"text": "   "})
    with pytest.raises(UserError, match="more than this service accepts"):
        services.infer(consumer=consumer, version_id=version.pk, payload={"text": "x" * 100_001})
    assert Inference.objects.count() == 1 and CreditAccount.objects.get(user=consumer).balance == 2
    assert AuditEvent.objects.filter(action="model.deploy").exists()


def test_same_seed_reproduces_metrics(classifier_setup):
    _, snapshot, model = classifier_setup
    a = ModelVersion.objects.get(run=train(model, snapshot, hyperparameters=FAST))
    b = ModelVersion.objects.get(run=train(model, snapshot, hyperparameters=FAST))
    assert (a.version, b.version) == (1, 2)
    assert a.metrics["accuracy"] == b.metrics["accuracy"] and a.metrics["val_loss"] == pytest.approx(
        b.metrics["val_loss"]
    )


def test_cancelled_run_registers_nothing(classifier_setup):
    _, snapshot, model = classifier_setup
    run = services.training_run_create(actor=model.builder, ml_model=model, snapshot=snapshot, hyperparameters=FAST)
    Job.objects.filter(pk=run.job_id).update(cancel_requested=True)
    services.training_run_execute(job_id=str(run.job_id))
    run.job.refresh_from_db()
    assert run.job.status == Job.Status.CANCELLED
    assert not ModelVersion.objects.exists()


def test_generative_lora_on_a_tiny_base_trains_and_generates():
    datanet, snapshot = snapshot_with(qa_records(), record_kind="qa", labels=[])
    model = services.model_create(builder=datanet.owner, datanet_slug=datanet.slug, name="QA")
    assert model.kind == "generative"
    run = train(model, snapshot, base_model="tiny", hyperparameters={"epochs": 2, "batch_size": 4, "max_length": 48})
    assert run.job.status == Job.Status.SUCCEEDED, run.job.error
    version = ModelVersion.objects.get(run=run)
    assert version.method == "lora" and "perplexity" in version.metrics
    services.version_deploy(actor=model.builder, version=version, deployed=True)
    consumer = UserFactory()
    credits_grant(actor=None, user=consumer, amount=3)
    # Even a barely trained tiny model answers with text, greedily: its first token must be a visible one.
    for prompt in ("What is the capital of region 3?", "hello"):
        inference = services.infer(
            consumer=consumer, version_id=version.pk, payload={"prompt": prompt, "max_tokens": 8}
        )
        assert inference.output["text"].strip() and inference.tokens_out >= 1
    with pytest.raises(UserError, match="max_tokens must be between 1 and 1024"):
        services.infer(consumer=consumer, version_id=version.pk, payload={"prompt": "hi", "max_tokens": 5000})
    assert CreditAccount.objects.get(user=consumer).balance == 1


def test_generative_runs_start_from_the_measured_recipe_and_the_card_scores_baselines(client):
    from models_factory.trainers.generative import lora_recipe

    datanet, snapshot = snapshot_with(qa_records(20), record_kind="qa", labels=[])
    model = services.model_create(builder=datanet.owner, datanet_slug=datanet.slug, name="QA")
    run = train(model, snapshot, base_model="tiny", hyperparameters={"epochs": 1})
    assert run.job.status == Job.Status.SUCCEEDED, run.job.error
    recipe = lora_recipe("tiny")
    assert run.hyperparameters["lr"] == recipe["lr"] and run.hyperparameters["epochs"] == 1
    assert run.hyperparameters["max_length"] == 0  # chosen from the data
    version = ModelVersion.objects.get(run=run)
    training = version.metrics["training"]
    assert training["n_train_examples"] == snapshot.train_count and training["max_length"] >= 8  # nothing dropped
    assert {"exact_match", "contains_answer"} <= set(version.metrics)
    assert set(version.metrics["baselines"]) == {"base_model", "lookup"}
    assert all(0 <= v <= 1 for b in version.metrics["baselines"].values() for v in b.values())
    client.force_login(model.builder)
    page = client.get(version.get_absolute_url()).content.decode()
    assert 'data-testid="answer-scores"' in page and "base model without the adapter" in page
    assert f"records truncated to {training['max_length']} tokens" in page and "none dropped" in page
    form = client.get(model.get_absolute_url()).content.decode()
    assert 'data-testid="recipe"' in form and 'name="epochs" type="number" placeholder="' in form


def test_an_empty_generation_is_refused_and_refunded(monkeypatch):
    datanet, snapshot = snapshot_with(qa_records(), record_kind="qa", labels=[])
    model = services.model_create(builder=datanet.owner, datanet_slug=datanet.slug, name="QA")
    run = train(model, snapshot, base_model="tiny", hyperparameters={"epochs": 1, "batch_size": 4, "max_length": 32})
    version = ModelVersion.objects.get(run=run)
    services.version_deploy(actor=model.builder, version=version, deployed=True, price_credits=3)
    consumer = UserFactory()
    credits_grant(actor=None, user=consumer, amount=5)

    class Silent:
        def generate(self, *args, **kwargs):
            return "  ", 9, 48

    monkeypatch.setattr("models_factory.predictors.generative_server", lambda: Silent())
    with pytest.raises(UserError, match=r"generated no text for this prompt \(48 tokens.*nothing was charged"):
        services.infer(consumer=consumer, version_id=version.pk, payload={"prompt": "Capital of region 3?"})
    assert CreditAccount.objects.get(user=consumer).balance == 5
    assert not Inference.objects.filter(version=version).exists()  # no paid call, so no receipt to explain


def test_text_datanet_cannot_have_a_model():
    datanet, _ = snapshot_with([{"text": f"line {i}"} for i in range(4)], record_kind="text", labels=[])
    with pytest.raises(UserError, match="labeled text"):
        services.model_create(builder=datanet.owner, datanet_slug=datanet.slug, name="x")


def test_artifacts_go_through_remote_storage_when_it_is_not_local(classifier_setup, settings, tmp_path):
    """With a storage that has no local paths (as S3/MinIO), versions point into it and are served from a cache."""
    _, snapshot, model = classifier_setup
    # Django's setting_changed handler swaps default_storage when STORAGES changes.
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"}}
    settings.VAR_DIR = tmp_path
    run = train(model, snapshot, hyperparameters=FAST)
    version = ModelVersion.objects.get(run=run)
    assert version.artifact_location.startswith("storage://models/")
    services.version_deploy(actor=model.builder, version=version, deployed=True)
    consumer = UserFactory()
    credits_grant(actor=None, user=consumer, amount=1)
    out = services.infer(consumer=consumer, version_id=version.pk, payload={"text": "very happy with it"})
    assert out.output["label"] in {"negative", "positive"}
    assert any((tmp_path / "model-cache").iterdir())
