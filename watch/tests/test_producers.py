"""The services announce what happened, once it has committed: appeals, training runs and anchored epochs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from accounts.credits import credits_grant
from accounts.tests.factories import UserFactory
from attribution.tests.test_platform import build, labeled, trained_classifier
from core import events
from core.models import Job
from datanets import services
from datanets.models import Record
from datanets.tests.factories import DatanetFactory, add_curators, distinct_records, ingest, jsonl
from models_factory import services as mf
from models_factory.services.training import training_run_execute
from settlement.anchor_steps import _confirm
from settlement.models import Epoch, Settlement
from settlement.tests.factories import model_version
from watch import webhooks
from watch.models import WebhookDelivery
from watch.tests.receiver import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def heard() -> Iterator[list[events.Event]]:
    got: list[events.Event] = []
    events.on_event(got.append)
    yield got
    events._subscribers.remove(got.append)


def test_an_appeal_decided_by_the_owner_is_announced_to_the_appellant(
    heard, tmp_path, django_capture_on_commit_callbacks
):
    datanet = DatanetFactory(appeal_panel=3)
    curators = add_curators(datanet, 2)
    alice = UserFactory()
    contribution, _ = ingest(alice, datanet, jsonl(distinct_records(1)), "a.jsonl", tmp_path)
    record = Record.objects.get(contribution=contribution)
    with django_capture_on_commit_callbacks(execute=True):
        for c in curators:
            services.vote_cast(curator=c, record_id=record.pk, decision="reject", reason="off topic")
        appeal = services.appeal_file(appellant=alice, kind="rejection", object_id=record.pk, reason="It is fine.")
        services.appeal_vote(voter=datanet.owner, appeal_id=appeal.pk, decision="overturn", reason="On topic.")
    resolved, decided = heard
    assert resolved.type == "record.resolved" and resolved.data["status"] == "rejected"
    assert decided.type == "appeal.decided" and decided.user_ids == (alice.pk,)
    assert decided.datanet_id == datanet.pk and decided.data["status"] == "overturned"
    assert "On topic." not in str(decided.data) and "It is fine." not in str(decided.data)  # no one's words


def test_a_finished_training_run_is_announced_to_its_builder(heard, django_capture_on_commit_callbacks):
    version = model_version()
    Job.objects.filter(pk=version.run.job_id).update(status=Job.Status.QUEUED, target_id=str(version.run.pk))
    with django_capture_on_commit_callbacks(execute=True):
        training_run_execute(job_id=str(version.run.job_id))
        training_run_execute(job_id=str(version.run.job_id))  # a redelivered task is not announced twice
    [event] = heard
    assert event.type == "run.finished" and event.user_ids == (version.run.created_by_id,)
    assert event.data["status"] == "succeeded" and event.data["version"] == 1


def test_an_anchored_epoch_is_announced_publicly_after_commit_only(heard, django_capture_on_commit_callbacks):
    now = timezone.now()
    epoch = Epoch.objects.create(number=1, status=Epoch.Status.SETTLING, opened_at=now, closed_at=now)
    settlement = Settlement.objects.create(
        epoch=epoch, state=Settlement.State.MINED, root="0x" + "1" * 64, tx_hash="0x" + "2" * 64, nonce=0
    )
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            _confirm(settlement, "confirmed")
            raise RuntimeError("rolled back")
    assert heard == []
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        _confirm(settlement, "confirmed")
        settlement.save()
    [event] = heard
    assert event.type == "epoch.settled" and event.public and event.data["root"] == settlement.root


def test_an_unknown_event_type_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="Unknown event type"):
        events.event_emit("record.deleted", data={})


def test_a_completed_receipt_reaches_its_consumer_without_their_input(
    heard, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    version = trained_classifier(labeled(40))
    build(version)
    consumer = UserFactory()
    credits_grant(actor=None, user=consumer, amount=5)
    receiver = Receiver().start()
    try:
        endpoint, secret = webhooks.endpoint_create(actor=consumer, url=receiver.url, event_types=["receipt.completed"])
        text = "made everything worse, awful headaches"
        with django_capture_on_commit_callbacks(execute=True):
            inference = mf.infer(consumer=consumer, version_id=version.pk, payload={"text": text})
        [delivery] = WebhookDelivery.objects.filter(endpoint=endpoint)
        webhooks.delivery_attempt(delivery_id=delivery.pk)
    finally:
        receiver.stop()
    [got] = receiver.requests
    payload = Webhook(secret).verify(got.body, got.headers)
    assert payload["data"]["receipt"] == inference.receipt_obj.id
    assert text not in got.body.decode() and inference.input_hash not in got.body.decode()
    assert [e.type for e in heard if e.type == "receipt.completed"] == ["receipt.completed"]
