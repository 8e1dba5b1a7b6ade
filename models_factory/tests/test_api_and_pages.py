from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts import services as account_services
from accounts.credits import credits_grant
from accounts.tests.factories import UserFactory
from models_factory import services
from models_factory.models import ModelVersion
from models_factory.tests.factories import sentiment_records, snapshot_with

pytestmark = pytest.mark.django_db


def token_client(user) -> APIClient:
    api = APIClient()
    _, raw = account_services.token_create(user=user, name="t")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return api


def test_train_deploy_and_infer_through_the_api_and_pages(client):
    datanet, snapshot = snapshot_with(sentiment_records(), labels=["negative", "positive"])
    builder = datanet.owner
    api = token_client(builder)
    model = api.post("/api/ml-models/", {"name": "Sentiment", "datanet_slug": datanet.slug}, format="json")
    assert model.status_code == 201 and model.json()["kind"] == "classifier"
    bad = api.post(
        "/api/training-runs/",
        {"model": "sentiment", "snapshot": snapshot.pk, "hyperparameters": {"batch_size": 0}},
        format="json",
    )
    assert bad.status_code == 400 and "batch_size must be between 1 and 4096" in bad.json()["detail"]
    run = api.post(
        "/api/training-runs/",
        {"model": "sentiment", "snapshot": snapshot.pk, "hyperparameters": {"epochs": 2, "max_length": 32}},
        format="json",
    )
    assert run.status_code == 202 and run.json()["job"]["status"] == "queued"
    services.training_run_execute(job_id=run.json()["job"]["id"])
    detail = api.get(f"/api/training-runs/{run.json()['id']}/").json()
    assert detail["job"]["status"] == "succeeded" and detail["loss_history"] and detail["version"]
    version_id = detail["version"]
    consumer = token_client(UserFactory())
    undeployed = consumer.post(f"/api/models/{version_id}/infer/", {"text": "great"}, format="json")
    assert undeployed.status_code == 409 and "not deployed" in undeployed.json()["detail"]
    assert api.post(f"/api/models/{version_id}/deploy/", {"deployed": True, "price_credits": 2}, format="json").json()[
        "deployed"
    ]
    broke = consumer.post(f"/api/models/{version_id}/infer/", {"text": "great"}, format="json")
    assert broke.status_code == 400 and broke.json()["code"] == "insufficient_credit"

    version = ModelVersion.objects.get(pk=version_id)
    client.force_login(builder)
    for url in (
        reverse("models_factory:list"),
        version.ml_model.get_absolute_url(),
        version.get_absolute_url(),
        reverse("models_factory:run", args=[run.json()["id"]]),
    ):
        page = client.get(url)
        assert page.status_code == 200, url
    card = client.get(version.get_absolute_url()).content.decode()
    assert snapshot.root in card and "Confusion matrix" in card
    download = client.get(reverse("models_factory:download", args=[version.ml_model.slug, version.version]))
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"


def test_consumer_with_credit_gets_a_prediction_via_api_key():
    datanet, snapshot = snapshot_with(sentiment_records(), labels=["negative", "positive"])
    model = services.model_create(builder=datanet.owner, datanet_slug=datanet.slug, name="S")
    run = services.training_run_create(
        actor=datanet.owner, ml_model=model, snapshot=snapshot, hyperparameters={"epochs": 1, "max_length": 32}
    )
    services.training_run_execute(job_id=str(run.job_id))
    version = ModelVersion.objects.get(run=run)
    services.version_deploy(actor=datanet.owner, version=version, deployed=True)
    user = UserFactory()
    credits_grant(actor=None, user=user, amount=1)
    api = token_client(user)
    resp = api.post(f"/api/models/{version.pk}/infer/", {"text": "made me feel great"}, format="json")
    assert resp.status_code == 200, resp.json()
    assert resp.json()["output"]["label"] in {"negative", "positive"} and resp.json()["balance"] == 0
    empty = api.post(f"/api/models/{version.pk}/infer/", {"text": ""}, format="json")
    assert empty.status_code == 400


def test_run_page_shows_the_embedding_phase_before_the_first_step(client):
    from core.jobs import job_create
    from models_factory.models import TrainingRun

    datanet, snapshot = snapshot_with(sentiment_records(), labels=["negative", "positive"])
    model = services.model_create(builder=datanet.owner, datanet_slug=datanet.slug, name="Sentiment")
    job = job_create(kind="train", user=datanet.owner, message="embedding 128 / 560 texts · 41.0/s · 10 s left")
    job.status = "running"
    job.save(update_fields=["status"])
    phase = {"name": "embedding", "done": 128, "total": 560, "unit": "texts", "rate": 41.0, "eta_s": 10.5}
    run = TrainingRun.objects.create(
        ml_model=model, snapshot=snapshot, base_model="minilm", method="head", job=job, created_by=datanet.owner,
        phase=phase, eta_s=10.5, eval_history=[[4, 0.61]],
    )  # fmt: skip
    client.force_login(datanet.owner)
    page = client.get(run.get_absolute_url()).content.decode()
    assert "embedding 128 / 560 texts · 41.0/s · 10 s left" in page
    assert "0 / 0" not in page and "no data yet" not in page
    assert "validation loss at each evaluation" in page
    body = client.get(reverse("api:training-run-detail", args=[run.pk])).json()
    assert body["phase"] == phase and body["eval_history"] == [[4, 0.61]]
