"""Who values a Datanet, and the flags its valuation sends to curators: one open flag per record and reason across
versions, dismissals that hold, a Flagged list sorted by severity with filters (page and API), receipts that
abstain when no record stands out from chance, and the Explain page."""

from __future__ import annotations

import itertools
import os

import pytest
from django.db import IntegrityError, transaction
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from attribution import selectors, valuation
from attribution.models import Flag, RecordValuation, ValuationDesignation
from attribution.tests.test_platform import build, labeled, paid_inference, trained_classifier
from core.models import Job
from datanets.models import Contribution, Record, Snapshot
from datanets.tests.factories import DatanetFactory, add_curators
from models_factory.models import MLModel, ModelVersion, TrainingRun

pytestmark = pytest.mark.django_db
_seq = itertools.count(1)


def model_version(datanet, builder=None) -> ModelVersion:
    """A registered classifier version on ``datanet`` (rows only: these tests never load its artifact)."""
    builder = builder or UserFactory()
    n = next(_seq)
    snapshot = Snapshot.objects.create(
        datanet=datanet, version=n, root="0" * 64, record_count=0, published_by=datanet.owner
    )
    ml_model = MLModel.objects.create(
        name=f"m{n}", slug=f"m-{n}", kind=MLModel.Kind.CLASSIFIER, datanet=datanet, builder=builder
    )
    job = Job.objects.create(kind="train", status=Job.Status.SUCCEEDED)
    run = TrainingRun.objects.create(
        ml_model=ml_model, snapshot=snapshot, base_model="tiny", method="head", job=job, created_by=builder
    )
    return ModelVersion.objects.create(
        ml_model=ml_model, version=1, run=run, snapshot=snapshot, snapshot_root=snapshot.root,
        base_model_id="tiny", base_model_sha256="0" * 64, method="head", artifact_location="-",
    )  # fmt: skip


def records_with_values(version, values) -> list[Record]:
    datanet = version.ml_model.datanet
    made = []
    for user, vals in values.items():
        contribution = Contribution.objects.create(
            datanet=datanet, contributor=user, source="paste", filename="x.jsonl", file_sha256=os.urandom(32).hex(),
            blob_name="-", size_bytes=1,
        )  # fmt: skip
        for i, v in enumerate(vals):
            record = Record.objects.create(
                datanet=datanet, contribution=contribution, contributor=user, line_no=i + 1,
                data={"text": f"{user.username} {i}", "label": "negative"}, content_hash=os.urandom(32).hex(),
                status="approved",
            )  # fmt: skip
            RecordValuation.objects.create(version=version, record=record, knn_shapley=v)
            made.append(record)
    return made


def value(version, records, severities: list[float]) -> None:
    """Stand-in for a valuation run: each record flagged as label-contradicted at the given severity (0 = not)."""
    RecordValuation.objects.filter(version=version).delete()
    for record, severity in zip(records, severities, strict=True):
        RecordValuation.objects.create(
            version=version,
            record=record,
            knn_shapley=-0.1,
            flagged=severity > 0,
            reasons=[Flag.Reason.LABEL] if severity > 0 else [],
            severity=severity,
            evidence={
                "label": "negative",
                "cross_fit": {
                    "suggested_label": "positive",
                    "suggested_probability": severity,
                    "own_label_probability": 0.01,
                },
            },
        )


def setup_datanet(n: int = 3):
    datanet = DatanetFactory()
    (curator,) = add_curators(datanet, 1)
    owner_version = model_version(datanet, builder=datanet.owner)
    records = records_with_values(owner_version, {UserFactory(): [0.1] * n})
    return datanet, curator, owner_version, records


def test_only_the_valuing_version_sends_flags_and_one_open_flag_per_record_and_reason() -> None:
    datanet, curator, v1, records = setup_datanet()
    stranger = model_version(datanet)
    value(stranger, records, [0.99, 0.99, 0.99])
    assert selectors.valuing_version(datanet) == (v1, "the newest valued version of the owner's own models")
    assert valuation.flags_sync(version=v1) == 0  # v1's own valuation flags nothing
    assert not Flag.objects.exists()
    # A stranger's flags touch only the stranger's own receipts.
    assert selectors.uncredited_records(stranger, [r.pk for r in records]) == {r.pk for r in records}
    assert selectors.uncredited_records(v1, [r.pk for r in records]) == set()

    value(v1, records, [0.9, 0.85, 0])
    assert valuation.flags_sync(version=v1) == 2
    v2 = model_version(datanet, builder=datanet.owner)  # a retrain: same evidence, no second flag
    value(v2, records, [0.95, 0.85, 0])
    assert selectors.valuing_version(datanet)[0] == v2
    assert valuation.flags_sync(version=v2) == 0
    first = Flag.objects.get(record=records[0])
    assert first.version == v2 and first.severity == 0.95 and "gives 'positive' 0.95" in first.summary
    assert Flag.objects.filter(status=Flag.Status.OPEN).count() == 2
    with pytest.raises(IntegrityError), transaction.atomic():
        Flag.objects.create(record=records[0], version=v1, reason=Flag.Reason.LABEL)

    # A dismissal holds for the next version with the same evidence, and reopens when it grows materially.
    valuation.flag_resolve(actor=curator, flag_id=Flag.objects.get(record=records[1]).pk, decision="dismiss")
    v3 = model_version(datanet, builder=datanet.owner)
    value(v3, records, [0.95, 0.85 + valuation.DISMISSAL_MARGIN / 2, 0])
    assert valuation.flags_sync(version=v3) == 0
    assert selectors.uncredited_records(v3, [records[1].pk]) == set()  # dismissed: credited again
    value(v3, records, [0.95, 0.85 + valuation.DISMISSAL_MARGIN, 0])
    assert valuation.flags_sync(version=v3) == 1
    assert Flag.objects.filter(record=records[1], status=Flag.Status.OPEN).count() == 1


def test_owner_designates_the_valuing_version_page_and_api(client) -> None:
    datanet, _, mine, records = setup_datanet()
    other = model_version(datanet)
    value(other, records, [0.9, 0, 0])
    api = APIClient()
    api.force_authenticate(other.ml_model.builder)
    url = f"/api/datanets/{datanet.slug}/valuing-version/"
    refused = api.put(url, {"version": other.pk}, format="json")
    assert refused.status_code == 403 and "Only the owner" in refused.json()["detail"]
    assert APIClient().get(url).json()["valuing_version"] == mine.pk
    # The owner chooses the other builder's version on the Datanet's rewards page: its flags reach curators at once.
    client.force_login(datanet.owner)
    page = client.get(f"/rewards/datanets/{datanet.slug}/").content.decode()
    assert 'data-testid="valuing-version"' in page and "the owner&#x27;s own models" in page
    answer = client.post(
        f"/attribution/valuing/{datanet.slug}/",
        {"version": str(other.pk), "next": f"/rewards/datanets/{datanet.slug}/"},
        follow=True,
    )
    assert (
        f"v{other.version} values {datanet.title} (designated by the Datanet&#x27;s owner)" in answer.content.decode()
    )
    assert Flag.objects.filter(version=other, status=Flag.Status.OPEN).count() == 1
    api.force_authenticate(datanet.owner)
    assert api.put(url, {"version": 999999}, format="json").status_code == 404
    body = api.put(url, {"version": None, "builders": [other.ml_model.builder.username]}, format="json").json()
    assert body["rule"].startswith("the newest valued version of a model by the owner or a builder")
    # The version page says which role a version's valuation plays.
    client.force_login(mine.ml_model.builder)
    panel = APIClient().get(f"/api/models/{mine.pk}/attribution/").json()["valuation"]
    assert panel["valuing_version"] is False and "only this version's own receipts" in panel["note"]


def test_flagged_list_is_sorted_by_severity_paginated_and_filtered(client) -> None:
    datanet, curator, v1, records = setup_datanet(60)
    value(v1, records, [0.5 + i / 200 for i in range(60)])
    valuation.flags_sync(version=v1)
    client.force_login(curator)
    page = client.get(f"/attribution/flags/{datanet.slug}/").content.decode()
    assert "60 open, most severe first" in page and "page 1 of 2" in page
    severities = [float(x.split("<")[0]) for x in page.split('data-testid="severity">')[1:]]
    assert severities == sorted(severities, reverse=True) and len(severities) == 50 and severities[0] == 0.79
    assert client.get(f"/attribution/flags/{datanet.slug}/?version=999").content.decode().count("Nothing flagged") == 1

    api = APIClient()
    api.force_authenticate(curator)
    listed = api.get(f"/api/datanets/{datanet.slug}/flags/?reason=label_contradicted&version={v1.pk}").json()
    assert listed["count"] == 60 and len(listed["results"]) == 50 and listed["valuing_version"] == v1.pk
    assert listed["results"][0]["severity"] == pytest.approx(0.795) and listed["results"][0]["record"] == records[-1].pk
    bad = api.get(f"/api/datanets/{datanet.slug}/flags/?reason=vibes")
    assert bad.status_code == 400 and "reason is one of" in bad.json()["detail"]
    outsider = APIClient()
    outsider.force_authenticate(UserFactory())
    assert outsider.get(f"/api/datanets/{datanet.slug}/flags/").status_code == 403
    flag_id = listed["results"][0]["id"]
    done = api.post(f"/api/flags/{flag_id}/resolve/", {"decision": "dismiss"}, format="json")
    assert done.status_code == 200 and done.json()["status"] == "dismissed"
    again = api.post(f"/api/flags/{flag_id}/resolve/", {"decision": "confirm"}, format="json")
    assert again.status_code == 409 and "already dismissed" in again.json()["detail"]


def test_gibberish_is_credited_to_no_record_and_the_explain_page_says_why(client) -> None:
    version = trained_classifier(labeled(40))
    index = build(version)
    assert index.params["chance_queries"] == 128 and 0 < index.params["chance_similarity"] < 1
    gibberish = paid_inference(version, {"text": "qzx vbnm kjh plo wert yuiop"})
    body = gibberish.receipt_obj.body
    assert body["chance"]["abstained"] is True and body["shares"] == []
    real = paid_inference(version, {"text": "terrible headaches and nausea every day, awful"})
    assert real.receipt_obj.body["chance"]["abstained"] is False
    assert sum(s["share_ppm"] for s in real.receipt_obj.body["shares"]) == 1_000_000
    from attribution.receipts import receipt_recompute

    assert receipt_recompute(gibberish.receipt_obj.id)[1] == gibberish.receipt_obj.id

    client.force_login(gibberish.consumer)
    page = client.get(gibberish.receipt_obj.get_absolute_url()).content.decode()
    assert "No record shaped this output measurably." in page and "joins the Datanet's epoch pool" in page
    client.force_login(real.consumer)
    page = client.get(real.receipt_obj.get_absolute_url()).content.decode()
    assert 'data-testid="score-meaning"' in page and "positive helped produce this output" in page
    assert 'data-testid="agreement"' in page and "carry the predicted label" in page
    scores = [x.split("<")[0] for x in page.split('data-testid="score">')[1:]]
    assert scores and all(len(s.lstrip("-").replace(".", "").lstrip("0")) <= 3 for s in scores), scores


def test_a_private_datanets_flags_and_valuer_form_answer_outsiders_like_missing_ones(client) -> None:
    datanet, curator, version, records = setup_datanet()
    datanet.is_public = False
    datanet.save(update_fields=["is_public"])
    flag = Flag.objects.create(record=records[0], version=version, severity=0.5)
    outsider = UserFactory()
    api = APIClient()
    api.force_authenticate(outsider)
    for pk in (flag.pk, 999999):  # a private Datanet's flag and a missing one read the same
        refused = api.post(f"/api/flags/{pk}/resolve/", {"decision": "confirm"}, format="json")
        assert refused.status_code == 404 and refused.json()["code"] == "not_found"
    client.force_login(outsider)
    answer = client.post(f"/attribution/valuing/{datanet.slug}/", {"builders": outsider.username}, follow=True)
    assert answer.status_code == 404 and datanet.title not in answer.content.decode()
    assert not ValuationDesignation.objects.filter(datanet=datanet).exists()
    api.force_authenticate(curator)
    assert api.post(f"/api/flags/{flag.pk}/resolve/", {"decision": "dismiss"}, format="json").status_code == 200
    client.force_login(datanet.owner)
    away = client.post(f"/attribution/valuing/{datanet.slug}/", {"builders": "", "next": "https://evil.example/"})
    assert away.status_code == 302 and away["Location"] == datanet.get_absolute_url()
