"""Issue 12, finding 1 and the oracles: a private Datanet's models, runs, versions, samples and artifacts answer
only to those who can see the Datanet; the answers to outsiders are those of a missing object."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from core.errors import NotFound, UserError
from datanets.models import Membership
from models_factory import services
from models_factory.models import ModelVersion
from models_factory.tests.factories import qa_records, sentiment_records, snapshot_with

pytestmark = pytest.mark.django_db

FAST = {"epochs": 1, "max_length": 32}


def logged_in(user) -> APIClient:
    api = APIClient()
    api.force_login(user)
    return api


def test_a_stranger_cannot_build_or_train_on_a_private_datanet_and_is_told_nothing_about_it():
    datanet, snapshot = snapshot_with(sentiment_records(), is_public=False, title="Ward Seven Notes")
    stranger = UserFactory()
    api = logged_in(stranger)
    private = api.post("/api/ml-models/", {"name": "m", "datanet_slug": datanet.slug}, format="json")
    missing = api.post("/api/ml-models/", {"name": "m", "datanet_slug": "no-such-datanet"}, format="json")
    assert private.status_code == missing.status_code == 404
    assert private.json()["detail"] == missing.json()["detail"].replace("no-such-datanet", datanet.slug)
    assert "Ward Seven" not in private.content.decode()
    with pytest.raises(NotFound):
        services.model_create(builder=stranger, datanet_slug=datanet.slug, name="m")
    # A model made on a public Datanet cannot be pointed at a private snapshot either: 404, like a missing one.
    public, _ = snapshot_with(sentiment_records())
    own = services.model_create(builder=stranger, datanet_slug=public.slug, name="own")
    run = api.post("/api/training-runs/", {"model": own.slug, "snapshot": snapshot.pk}, format="json")
    gone = api.post("/api/training-runs/", {"model": own.slug, "snapshot": 10**9}, format="json")
    assert run.status_code == gone.status_code == 404
    with pytest.raises(NotFound):
        services.training_run_create(actor=stranger, ml_model=own, snapshot=snapshot)
    # A member may build on it (the rule chosen: owner, members and superusers build on a private Datanet).
    member = UserFactory()
    Membership.objects.create(datanet=datanet, user=member, role=Membership.Role.CONTRIBUTOR)
    assert services.model_create(builder=member, datanet_slug=datanet.slug, name="ok").datanet == datanet


def test_validation_samples_of_a_private_generative_model_stay_with_its_members():
    records = [{**r, "answer": r["answer"] + " zqxsecretanswer"} for r in qa_records()]
    datanet, snapshot = snapshot_with(records, record_kind="qa", labels=[], is_public=False)
    model = services.model_create(builder=datanet.owner, datanet_slug=datanet.slug, name="QA")
    run = services.training_run_create(
        actor=datanet.owner,
        ml_model=model,
        snapshot=snapshot,
        base_model="tiny",
        hyperparameters={"epochs": 1, "batch_size": 4, "max_length": 48},
    )
    services.training_run_execute(job_id=str(run.job_id))
    version = ModelVersion.objects.get(run=run)
    assert "zqxsecretanswer" in str(version.metrics["samples"])
    for api in (APIClient(), logged_in(UserFactory())):
        for url in ("/api/models/", "/api/ml-models/", "/api/training-runs/", "/models/"):
            response = api.get(url)
            assert response.status_code == 200 and "zqxsecretanswer" not in response.content.decode(), url
            assert datanet.title not in response.content.decode(), url
        assert api.get(f"/api/models/{version.pk}/").status_code == 404
        assert api.get(version.get_absolute_url()).status_code == 404
    assert "zqxsecretanswer" in logged_in(datanet.owner).get(f"/api/models/{version.pk}/").content.decode()


def test_the_download_streams_a_prebuilt_zip_to_viewers_only(settings):
    datanet, snapshot = snapshot_with(sentiment_records(), labels=["negative", "positive"], is_public=False)
    model = services.model_create(builder=datanet.owner, datanet_slug=datanet.slug, name="S")
    run = services.training_run_create(actor=datanet.owner, ml_model=model, snapshot=snapshot, hyperparameters=FAST)
    services.training_run_execute(job_id=str(run.job_id))
    version = ModelVersion.objects.get(run=run)
    url = reverse("models_factory:download", args=[model.slug, version.version])
    assert APIClient().get(url).status_code == 404
    assert logged_in(UserFactory()).get(url).status_code == 404
    first = logged_in(datanet.owner).get(url)
    assert first.status_code == 200 and first.streaming and first["Content-Type"] == "application/zip"
    data = b"".join(first.streaming_content)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert names and not {".published", ".complete"} & set(names)
    prebuilt = list((settings.VAR_DIR / "model-zips").glob("*.zip"))
    assert prebuilt and any(p.read_bytes() == data for p in prebuilt)
    again = logged_in(datanet.owner).get(url)
    assert b"".join(again.streaming_content) == data


def test_the_version_api_shows_no_server_paths_and_base_models_come_from_registered_folders(settings, tmp_path):
    datanet, snapshot = snapshot_with(sentiment_records(), labels=["negative", "positive"])
    model = services.model_create(builder=datanet.owner, datanet_slug=datanet.slug, name="S")
    settings.MODEL_BASE_DIRS = [str(tmp_path / "bases")]
    (tmp_path / "bases" / "my-encoder").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    for outside in ("/etc", str(tmp_path / "elsewhere"), str(tmp_path / "bases" / ".." / "elsewhere"), "/no/such"):
        with pytest.raises(UserError, match="MODEL_BASE_DIRS"):
            services.training_run_create(actor=datanet.owner, ml_model=model, snapshot=snapshot, base_model=outside)
    with pytest.raises(UserError, match="MODEL_BASE_DIRS"):  # the registered folder itself is not a model
        services.training_run_create(
            actor=datanet.owner, ml_model=model, snapshot=snapshot, base_model=str(tmp_path / "bases")
        )
    inside = services.training_run_create(
        actor=datanet.owner, ml_model=model, snapshot=snapshot, base_model=str(tmp_path / "bases" / "my-encoder")
    )
    api = logged_in(datanet.owner)
    run = api.get(f"/api/training-runs/{inside.pk}/").json()
    assert run["base_model"] == "my-encoder" and str(tmp_path) not in str(run)
    ok = services.training_run_create(actor=datanet.owner, ml_model=model, snapshot=snapshot, hyperparameters=FAST)
    services.training_run_execute(job_id=str(ok.job_id))
    version = ModelVersion.objects.get(run=ok)
    body = api.get(f"/api/models/{version.pk}/").json()
    assert "artifact_location" not in body and str(settings.VAR_DIR) not in str(body)
    assert body["base_model_id"].endswith("all-MiniLM-L6-v2")
