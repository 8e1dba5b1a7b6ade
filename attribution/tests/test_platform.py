"""Attribution in the platform: indexes, receipts, recompute, valuation flags and their resolution, status when not
ready, and what attribution adds to the Model Factory through its hooks (the paid answer, the version page)."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from accounts.credits import credits_grant
from accounts.models import AuditEvent
from accounts.tests.factories import UserFactory
from attribution import indexes, receipts, selectors, valuation
from attribution.models import AttributionIndex, Citation, Flag, Receipt
from core.errors import Conflict, Forbidden, UserError
from core.models import Job
from datanets.models import Membership, Record, SnapshotRecord
from models_factory import predictors
from models_factory import services as mf
from models_factory.models import Inference, ModelVersion
from models_factory.tests.factories import qa_records, snapshot_with

pytestmark = pytest.mark.django_db

POSITIVE = ["works great and I feel much better", "excellent results with no side effects", "very happy, it helped"]
NEGATIVE = ["terrible headaches and nausea every day", "made everything worse, awful", "stopped after a week of pain"]


GOOD_WORDS = "wonderful relief excellent helped happy better recommend effective great calm improved".split()
BAD_WORDS = "terrible nausea awful worse pain dizzy headache rash useless vomiting insomnia".split()


def labeled(n: int, flip: set[int] = frozenset()) -> list[dict[str, str]]:
    import random

    rng = random.Random(11)
    rows = []
    for i in range(n):
        good = i % 2 == 0
        words = GOOD_WORDS if good else BAD_WORDS
        text = f"{(POSITIVE if good else NEGATIVE)[i % 3]}, " + " ".join(rng.choice(words) for _ in range(8))
        label = "positive" if good else "negative"
        if i in flip:
            label = "negative" if good else "positive"
        rows.append({"text": text, "label": label})
    return rows


def trained_classifier(records, validation_percent: int = 10):
    datanet, snapshot = snapshot_with(records, labels=["negative", "positive"], validation_percent=validation_percent)
    model = mf.model_create(builder=datanet.owner, datanet_slug=datanet.slug, name="S")
    # The head-only method: these tests are about receipts and flags, and the fine-tuned default collapses a toy
    # vocabulary's embeddings into two clusters, so its receipts abstain on these bag-of-words records.
    run = mf.training_run_create(
        actor=datanet.owner,
        ml_model=model,
        snapshot=snapshot,
        method="head",
        hyperparameters={"epochs": 3, "max_length": 32},
    )
    mf.training_run_execute(job_id=str(run.job_id))
    version = ModelVersion.objects.get(run=run)
    mf.version_deploy(actor=datanet.owner, version=version, deployed=True)
    return version


def build(version):
    index = AttributionIndex.objects.get(version=version)
    assert index.status == "building" and index.job.status == "queued"  # requested when the version registered
    indexes.index_build(job_id=str(index.job_id))
    index.refresh_from_db()
    return index


def paid_inference(version, payload):
    consumer = UserFactory()
    credits_grant(actor=None, user=consumer, amount=5)
    return mf.infer(consumer=consumer, version_id=version.pk, payload=payload)


def test_no_receipt_is_invented_while_the_index_builds(client):
    version = trained_classifier(labeled(24))
    inference = paid_inference(version, {"text": "works great"})
    assert inference.attribution_status == "building" and inference.receipt_obj is None
    assert "still building" in inference.attribution_message
    # What the Model Factory adds to the paid call's answer comes from attribution's hook.
    assert inference.extra_fields == {
        "attribution": {"status": "building", "message": inference.attribution_message},
        "receipt": None,
    }
    # The version's page shows attribution's panel: the index job was requested when the version registered.
    client.force_login(version.ml_model.builder)
    card = client.get(version.get_absolute_url()).content.decode()
    assert "<h2>Attribution</h2>" in card and 'data-testid="attribution-status"' in card and "queued" in card
    assert not Receipt.objects.exists()
    AttributionIndex.objects.filter(version=version).delete()
    assert receipts.attribution_status(version)[0] == "missing"


def test_receipt_for_a_classifier_inference_and_its_recompute():
    version = trained_classifier(labeled(40))
    index = build(version)
    assert index.status == "ready" and index.n_records > 0
    inference = paid_inference(version, {"text": "made everything worse, awful headaches"})
    receipt = inference.receipt_obj
    assert receipt is not None and receipt.id == receipts.receipt_id(receipt.body)
    body = receipt.body
    assert body["snapshot_root"] == version.snapshot_root and body["method"] == "gradient"
    assert len(body["top_k"]) == min(receipts.TOP_K, index.n_records)
    scores = [t["score"] for t in body["top_k"]]
    assert scores == sorted(scores, reverse=True)
    assert sum(s["share_ppm"] for s in body["shares"]) == 1_000_000
    assert Citation.objects.filter(receipt=receipt).count() == len(body["top_k"])
    # The records that most lowered the loss of "negative" are negative reviews.
    top_labels = [inference.version.snapshot.entries.get(record_id=t["record"]).record.label for t in body["top_k"][:5]]
    assert top_labels.count(inference.output["label"]) >= 4
    call_command("recompute_receipt", receipt.id)
    api = APIClient().get(f"/api/receipts/{receipt.id}/").json()
    assert api["id"] == receipt.id and api["body"] == body
    assert APIClient().get(f"/api/receipts/{'0' * 64}/").status_code == 404
    with pytest.raises(CommandError, match="no receipt"):
        call_command("recompute_receipt", "nope")


def test_index_refuses_a_model_whose_trainable_parameters_changed():
    import torch

    from attribution.engine import GradientIndex, IndexMismatch

    version = trained_classifier(labeled(24))
    index = build(version)
    predictor = predictors.classifier_predictor(version)
    head = predictor.gradient_head()
    with pytest.raises(IndexMismatch):
        GradientIndex.load(f"{index.path}/gradient", torch.nn.Linear(head.in_features, 5), predictor.per_example_loss)


def test_valuation_flags_planted_mislabeled_records_to_curators(client):
    planted = {3, 8, 15, 22, 33}
    version = trained_classifier(labeled(80, flip=planted), validation_percent=40)
    build(version)
    job = Job.objects.filter(kind="valuation").latest("created_at")
    valuation.valuation_run(job_id=str(job.pk))
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    flagged_lines = set(Flag.objects.filter(version=version).values_list("record__line_no", flat=True))
    planted_lines = {i + 1 for i in planted}
    in_train = set(version.snapshot.entries.filter(split="train").values_list("record__line_no", flat=True))
    expected = planted_lines & in_train
    assert expected and expected <= flagged_lines
    assert len(flagged_lines) <= 0.2 * len(in_train)
    flag = Flag.objects.filter(version=version).first()
    assert "knn_shapley" in flag.evidence and flag.reason

    # Curators resolve flags: confirming rejects the record, once, with an audit row.
    datanet = version.ml_model.datanet
    curator = UserFactory()
    Membership.objects.create(datanet=datanet, user=curator, role=Membership.Role.CURATOR)
    with pytest.raises(Forbidden):
        valuation.flag_resolve(actor=datanet.owner, flag_id=flag.pk, decision="confirm")
    with pytest.raises(UserError, match="confirm' or 'dismiss"):
        valuation.flag_resolve(actor=curator, flag_id=flag.pk, decision="maybe")
    valuation.flag_resolve(actor=curator, flag_id=flag.pk, decision="confirm", reason="the text is positive")
    flag.refresh_from_db()
    assert flag.status == Flag.Status.CONFIRMED and flag.resolved_by == curator
    assert Record.objects.get(pk=flag.record_id).status == Record.Status.REJECTED
    event = AuditEvent.objects.get(action="flag.confirm", target_id=str(flag.pk))
    assert event.actor == curator and event.after["note"] == "the text is positive"
    with pytest.raises(Conflict):
        valuation.flag_resolve(actor=curator, flag_id=flag.pk, decision="dismiss")
    # The flags page goes through the same service.
    # (a record may carry flags of two reasons; the confirmed one already rejected its record)
    other = Flag.objects.filter(version=version, status=Flag.Status.OPEN).exclude(record=flag.record).first()
    client.force_login(curator)
    page = client.post(f"/attribution/flags/{datanet.slug}/", {"flag": other.pk, "decision": "dismiss"}, follow=True)
    assert b"Dismissed: the record stays." in page.content
    other.refresh_from_db()
    assert other.status == Flag.Status.DISMISSED and other.resolved_by == curator
    page = client.post(f"/attribution/flags/{datanet.slug}/", {"flag": other.pk, "decision": "confirm"}, follow=True)
    assert b"already dismissed" in page.content
    assert Record.objects.get(pk=other.record_id).status != Record.Status.REJECTED


def test_generative_receipt_credits_verbatim_spans():
    records = qa_records(12)
    datanet, snapshot = snapshot_with(records, record_kind="qa", labels=[])
    model = mf.model_create(builder=datanet.owner, datanet_slug=datanet.slug, name="QA")
    run = mf.training_run_create(
        actor=datanet.owner,
        ml_model=model,
        snapshot=snapshot,
        base_model="tiny",
        hyperparameters={"epochs": 1, "batch_size": 4, "max_length": 48},
    )
    mf.training_run_execute(job_id=str(run.job_id))
    version = ModelVersion.objects.get(run=run)
    mf.version_deploy(actor=datanet.owner, version=version, deployed=True)
    index = build(version)
    assert index.method == "spans" and index.status == "ready"
    # Even a 1-epoch tiny model answers greedily with text (its first token must be visible).
    inference = paid_inference(version, {"prompt": "What is the capital of region 3?", "max_tokens": 12})
    assert inference.output["text"].strip()
    receipt = inference.receipt_obj
    # Whatever the tiny model generated, a receipt exists, its shares are whole and it recomputes to the same id:
    # spans when the output repeats training text verbatim, else sentence-encoder similarity.
    assert receipt is not None and receipt.body["method"] in {"spans", "similarity"}
    assert sum(s["share_ppm"] for s in receipt.body["shares"]) in (0, 1_000_000)
    _, rid = receipts.receipt_recompute(receipt.id)
    assert rid == receipt.id

    loaded, extra = indexes.index_load(version, index)
    positions = {e[0]: i for i, e in enumerate(selectors.train_entries(version))}
    record_of = {SnapshotRecord.objects.get(snapshot=snapshot, record_id=r).record.data["answer"]: p
                 for r, p in positions.items()}  # fmt: skip
    # An answer copied from one record: spans credit that record first.
    copied = Inference(
        input={"prompt": "Tell me about region 7."}, output={"text": "The capital of region 7 is Town7."}
    )
    method, scored = receipts.scores_for(version, loaded, extra, copied)
    assert method == "spans" and scored[0][0] == record_of["The capital of region 7 is Town7."]
    # No shared span of 6 tokens: the record closest in meaning comes first.
    reworded = Inference(input={"prompt": "Which town governs region 9?"}, output={"text": "Town9 governs it."})
    method, scored = receipts.scores_for(version, loaded, extra, reworded)
    assert method == "similarity" and len(scored) == min(receipts.TOP_K, len(positions))
    assert scored[0][0] == record_of["The capital of region 9 is Town9."]
    assert [s for _, s in scored] == sorted((s for _, s in scored), reverse=True)
    # A stored similarity receipt recomputes to the same id from the snapshot and artifact alone.
    stored = Inference.objects.create(
        version=version, consumer=inference.consumer, input=reworded.input, input_hash="0" * 64,
        output=reworded.output, fee=1, latency_ms=1.0,
    )  # fmt: skip
    similar = receipts.receipt_create(inference=stored)
    assert similar is not None and similar.body["method"] == "similarity"
    assert sum(s["share_ppm"] for s in similar.body["shares"]) == 1_000_000
    assert receipts.receipt_recompute(similar.id)[1] == similar.id
    from attribution.engine import SpanIndex

    span_index = SpanIndex.load(f"{index.path}/spans")
    with pytest.raises(ValueError, match="empty"):
        span_index.find_spans([], min_len=6)


def test_the_explain_page_of_an_empty_generation_says_why_nothing_is_credited(client):
    datanet, snapshot = snapshot_with(qa_records(8), record_kind="qa", labels=[])
    model = mf.model_create(builder=datanet.owner, datanet_slug=datanet.slug, name="QA")
    run = mf.training_run_create(
        actor=datanet.owner, ml_model=model, snapshot=snapshot, base_model="tiny",
        hyperparameters={"epochs": 1, "batch_size": 4, "max_length": 32},
    )  # fmt: skip
    mf.training_run_execute(job_id=str(run.job_id))
    version = ModelVersion.objects.get(run=run)
    build(version)
    consumer = UserFactory()
    # A paid call recorded with an empty output (such calls are refused now, but older ones exist).
    empty = Inference.objects.create(
        version=version, consumer=consumer, input={"prompt": "Capital of region 3?"}, input_hash="0" * 64,
        output={"text": ""}, tokens_out=48, fee=3, latency_ms=1.0,
    )  # fmt: skip
    receipt = receipts.receipt_create(inference=empty)
    assert receipt is not None and receipt.body["top_k"] == [] and receipt.body["shares"] == []
    for viewer in (consumer, datanet.owner):  # the consumer sees the output; the owner its hash
        client.force_login(viewer)
        page = client.get(receipt.get_absolute_url())
        assert page.status_code == 200
        assert b"generated no text for this call, so there is nothing to attribute" in page.content


def test_explain_page_and_flags_page(client):
    version = trained_classifier(labeled(40, flip={5}))
    build(version)
    inference = paid_inference(version, {"text": "very happy, it helped a lot"})
    page = client.get(inference.receipt_obj.get_absolute_url())
    assert page.status_code == 200 and inference.receipt_obj.id.encode() in page.content
    assert b"Contributor shares" in page.content
    datanet = version.ml_model.datanet
    client.force_login(datanet.owner)
    assert client.get(f"/attribution/flags/{datanet.slug}/").status_code == 302  # owner is not a curator
    contributor = inference.receipt_obj.citations.first().contributor
    assert client.get(f"/attribution/contributors/{contributor.username}/").status_code == 200
