"""A webhook goes out through a real Celery worker on the short queue, retried after a 500, and verifies."""

from __future__ import annotations

import pytest
from standardwebhooks.webhooks import Webhook

from conftest import wait_for
from datanets import services
from datanets.models import Record
from datanets.tests.factories import snapshot_with
from watch import webhooks
from watch.models import WebhookDelivery
from watch.tests.receiver import Receiver

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_published_snapshot_reaches_the_receiver_through_the_worker_after_a_retry(worker, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    worker.stop()
    worker.start(extra_env={"WEBHOOK_ALLOW_PRIVATE_URLS": "1", "WEBHOOK_BACKOFF_SECONDS": "0.5"})
    receiver = Receiver(script=[500, 200]).start()
    try:
        datanet, first = snapshot_with([{"text": "one", "label": "positive"}])
        endpoint, secret = webhooks.endpoint_create(
            actor=datanet.owner, url=receiver.url, event_types=["snapshot.published"], datanet=datanet
        )
        record = Record.objects.get(datanet=datanet)  # one more approved record, so a new version can be published
        Record.objects.create(
            datanet=datanet,
            contribution=record.contribution,
            contributor=record.contributor,
            line_no=2,
            data={"text": "two", "label": "negative"},
            content_hash="f" * 64,
            label="negative",
            status="approved",
        )
        snapshot = services.snapshot_publish(actor=datanet.owner, datanet=datanet)
        delivery = wait_for(
            lambda: WebhookDelivery.objects.filter(endpoint=endpoint, status="succeeded").first(),
            timeout=60,
            what="the worker to deliver the webhook",
        )
    finally:
        receiver.stop()
        worker.stop()
    assert delivery.attempts == 2 and [a.status_code for a in delivery.attempt_log.all()] == [500, 200]
    payload = Webhook(secret).verify(receiver.requests[-1].body, receiver.requests[-1].headers)
    assert payload["data"]["root"] == snapshot.root and payload["data"]["version"] == first.version + 1
