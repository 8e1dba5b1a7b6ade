"""Paid inference reserves its fee before the model runs: parallel calls with credit for five run five times, and a
call that fails gives the fee back."""

from __future__ import annotations

import threading

import pytest
from django.db import close_old_connections

from accounts.credits import credit_balance, credits_grant
from accounts.models import AuditEvent
from accounts.tests.factories import UserFactory
from core.errors import UserError
from models_factory import predictors, services
from models_factory.models import Inference, ModelVersion
from models_factory.tests.factories import sentiment_records, snapshot_with


def deployed_classifier() -> ModelVersion:
    datanet, snapshot = snapshot_with(sentiment_records(), labels=["negative", "positive"])
    model = services.model_create(builder=datanet.owner, datanet_slug=datanet.slug, name="S")
    run = services.training_run_create(
        actor=datanet.owner, ml_model=model, snapshot=snapshot, hyperparameters={"epochs": 1, "max_length": 32}
    )
    services.training_run_execute(job_id=str(run.job_id))
    version = ModelVersion.objects.get(run=run)
    return services.version_deploy(actor=datanet.owner, version=version, deployed=True, price_credits=1)


@pytest.mark.django_db(transaction=True)
def test_parallel_calls_run_only_as_often_as_the_credit_pays(monkeypatch: pytest.MonkeyPatch) -> None:
    version = deployed_classifier()
    consumer = UserFactory()
    credits_grant(actor=None, user=consumer, amount=5)
    runs: list[int] = []
    real = predictors.classifier_predictor

    def counting(v: ModelVersion):  # type: ignore[no-untyped-def]
        runs.append(1)
        return real(v)

    monkeypatch.setattr(predictors, "classifier_predictor", counting)
    refused: list[str] = []

    def call() -> None:
        try:
            services.infer(consumer=consumer, version_id=version.pk, payload={"text": "it helped a lot"})
        except UserError as exc:
            refused.append(exc.message)
        except Exception as exc:  # SQLite's write lock timing out counts as a refusal too
            refused.append(str(exc))
        finally:
            close_old_connections()

    threads = [threading.Thread(target=call) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(runs) <= 5 and Inference.objects.filter(consumer=consumer).count() == len(runs)
    assert credit_balance(user=consumer) == 5 - len(runs)
    assert len(refused) == 20 - len(runs) and any("costs 1 credits" in m for m in refused)


@pytest.mark.django_db
def test_a_call_that_fails_gives_the_fee_back(monkeypatch: pytest.MonkeyPatch) -> None:
    from models_factory.trainers import TrainerError

    version = deployed_classifier()
    consumer = UserFactory()
    credits_grant(actor=None, user=consumer, amount=3)

    def broken(v: ModelVersion):  # type: ignore[no-untyped-def]
        raise TrainerError("the artifact is unreadable")

    monkeypatch.setattr(predictors, "classifier_predictor", broken)
    with pytest.raises(UserError, match="could not be loaded"):
        services.infer(consumer=consumer, version_id=version.pk, payload={"text": "fine"})
    assert credit_balance(user=consumer) == 3 and not Inference.objects.filter(consumer=consumer).exists()
    assert AuditEvent.objects.filter(action="credits.refund").count() == 1
