"""Webhooks against a real HTTP receiver: signatures, retries, timeouts, disabling, addresses and roles."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from accounts.models import AuditEvent
from accounts.tests.factories import UserFactory
from core.errors import Forbidden, UserError
from core.events import event_emit
from datanets import services
from datanets.models import Membership, Record
from datanets.tests.factories import DatanetFactory, add_curators, distinct_records, ingest, jsonl
from watch import webhooks
from watch.models import WebhookDelivery, WebhookEndpoint
from watch.tests.receiver import Receiver

pytestmark = pytest.mark.django_db
LATER = timedelta(hours=1)  # attempts in these tests are sent "later", when the backoff has passed


@pytest.fixture
def receiver(settings: Any) -> Iterator[Receiver]:
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True  # the receiver is on loopback
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.5
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def resolved(tmp_path: Any) -> Any:
    """A private Datanet with one record two curators are about to resolve, and its contributor."""

    def make(*, public: bool = False) -> tuple[Any, Any, list[Any], Record]:
        datanet = DatanetFactory(is_public=public)
        curators = add_curators(datanet, 2)
        alice = UserFactory()
        Membership.objects.create(datanet=datanet, user=alice, role=Membership.Role.CONTRIBUTOR)
        contribution, _ = ingest(alice, datanet, jsonl(distinct_records(1)), "a.jsonl", tmp_path)
        record = Record.objects.get(contribution=contribution)
        return datanet, alice, curators, record

    return make


def resolve(curators: list[Any], record: Record, capture: Any) -> None:
    with capture(execute=True):
        for c in curators:
            services.vote_cast(curator=c, record_id=record.pk, decision="approve")


def rows_of(answer: Any) -> list[Any]:
    return answer["results"] if isinstance(answer, dict) else answer


def send_all(now: Any = None) -> list[WebhookDelivery]:
    for d in WebhookDelivery.objects.filter(status__in=["pending", "retrying"]):
        webhooks.delivery_attempt(delivery_id=d.pk, now=now or timezone.now() + LATER)
    return list(WebhookDelivery.objects.order_by("id"))


def test_a_resolved_record_is_delivered_signed_and_verifies(receiver, resolved, django_capture_on_commit_callbacks):
    datanet, alice, curators, record = resolved()
    endpoint, secret = webhooks.endpoint_create(
        actor=datanet.owner, url=receiver.url, event_types=["record.resolved"], datanet=datanet
    )
    assert secret.startswith("whsec_")
    resolve(curators, record, django_capture_on_commit_callbacks)
    [delivery] = send_all(timezone.now())
    assert delivery.status == "succeeded" and delivery.last_status_code == 200 and delivery.attempts == 1
    [got] = receiver.requests
    payload = Webhook(secret).verify(got.body, got.headers)  # raises on a bad signature
    assert payload["type"] == "record.resolved"
    assert payload["data"]["record"] == record.pk and payload["data"]["status"] == "approved"
    assert got.headers["webhook-id"] == delivery.msg_id
    assert record.data["text"] not in got.body.decode()  # a record's text never leaves in a webhook
    with pytest.raises(WebhookVerificationError):
        Webhook(webhooks.secret_new()).verify(got.body, got.headers)
    tampered = got.body.replace(b"approved", b"rejected")
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, got.headers)
    # The spec by hand: v1,base64(HMAC-SHA256(base64-decoded key, "id.timestamp.body")).
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{got.headers['webhook-id']}.{got.headers['webhook-timestamp']}.".encode() + got.body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert got.headers["webhook-signature"] == expected
    # And the README's snippet, run as written, on this delivery.
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    snippet = readme.split("### Webhooks and the explorer", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    scope: dict[str, Any] = {}
    exec(snippet, scope)  # noqa: S102 (our own README)
    assert scope["event_from"](got.body, got.headers, secret)["data"]["record"] == record.pk


def test_a_500_is_retried_with_backoff_until_it_succeeds(
    receiver, resolved, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_BACKOFF_SECONDS = 10
    receiver.script = [500, 500, 200]
    datanet, alice, curators, record = resolved()
    endpoint, _ = webhooks.endpoint_create(
        actor=datanet.owner, url=receiver.url, event_types=["record.resolved"], datanet=datanet
    )
    resolve(curators, record, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    before = timezone.now()
    first = webhooks.delivery_attempt(delivery_id=delivery.pk)
    assert first.status == "retrying" and first.last_status_code == 500
    assert before + timedelta(seconds=9) < first.next_retry_at < timezone.now() + timedelta(seconds=11)
    assert webhooks.delivery_attempt(delivery_id=delivery.pk) is None  # not due yet: nothing is sent
    second = webhooks.delivery_attempt(delivery_id=delivery.pk, now=first.next_retry_at + timedelta(seconds=1))
    assert second.status == "retrying"
    assert second.next_retry_at - timezone.now() > timedelta(seconds=19)  # the wait doubled
    third = webhooks.delivery_attempt(delivery_id=delivery.pk, now=timezone.now() + LATER)
    assert third.status == "succeeded" and third.attempts == 3
    assert [a.status_code for a in third.attempt_log.all()] == [500, 500, 200]
    assert len(receiver.requests) == 3
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1  # the same id on every retry
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 0 and endpoint.is_active


def test_a_timeout_counts_as_a_failure_and_it_gives_up_after_max_attempts(
    receiver, resolved, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    receiver.script = [("sleep", 1.5)]
    datanet, alice, curators, record = resolved()
    webhooks.endpoint_create(actor=datanet.owner, url=receiver.url, event_types=["record.resolved"], datanet=datanet)
    resolve(curators, record, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    first = webhooks.delivery_attempt(delivery_id=delivery.pk)
    assert first.status == "retrying" and first.last_status_code is None
    assert "No answer within 0.5 s" in first.last_error
    last = webhooks.delivery_attempt(delivery_id=delivery.pk, now=timezone.now() + LATER)
    assert last.status == "failed" and last.attempts == 2 and last.next_retry_at is None
    assert webhooks.delivery_attempt(delivery_id=delivery.pk, now=timezone.now() + LATER) is None


def test_an_endpoint_that_keeps_failing_is_disabled_with_a_notice(
    receiver, resolved, settings, client, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_DISABLE_AFTER = 3
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    receiver.script = [500]
    datanet, alice, curators, record = resolved()
    endpoint, _ = webhooks.endpoint_create(
        actor=datanet.owner, url=receiver.url, event_types=["record.resolved", "snapshot.published"], datanet=datanet
    )
    resolve(curators, record, django_capture_on_commit_callbacks)
    send_all()
    send_all()  # two failed attempts: still active
    endpoint.refresh_from_db()
    assert endpoint.is_active and endpoint.consecutive_failures == 2
    with django_capture_on_commit_callbacks(execute=True):
        services.snapshot_publish(actor=datanet.owner, datanet=datanet)
    send_all()  # the third failure in a row disables it
    endpoint.refresh_from_db()
    assert not endpoint.is_active and "3 failed attempts in a row" in endpoint.disabled_reason
    assert AuditEvent.objects.filter(action="webhook.disabled").exists()
    sent = len(receiver.requests)
    assert send_all()[-1].status == "failed"  # its pending retry is not sent
    assert len(receiver.requests) == sent
    client.force_login(datanet.owner)
    page = client.get(reverse("watch:endpoint", args=[endpoint.pk])).content.decode()
    assert "3 failed attempts in a row" in page and "Enable again" in page
    receiver.script = [200]
    client.post(reverse("watch:endpoint-enable", args=[endpoint.pk]))
    endpoint.refresh_from_db()
    assert endpoint.is_active and endpoint.consecutive_failures == 0


def test_private_and_loopback_addresses_are_refused_unless_allowed(settings, resolved, receiver):
    datanet, *_ = resolved()
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = False
    for url in [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.5/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "ftp://example.org/hook",
        "http://user:pw@93.184.216.34/hook",
    ]:
        with pytest.raises(UserError):
            webhooks.endpoint_create(actor=datanet.owner, url=url, event_types=["record.resolved"], datanet=datanet)
    assert webhooks.url_refusal("https://93.184.216.34/hook") is None  # a public address literal
    # Registered while allowed, then refused at send time: nothing reaches the receiver.
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    endpoint, _ = webhooks.endpoint_create(
        actor=datanet.owner, url=receiver.url, event_types=["record.resolved"], datanet=datanet
    )
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint, msg_id="msg_x", event_type="record.resolved", payload={}
    )
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = False
    attempt = webhooks.delivery_attempt(delivery_id=delivery.pk)
    assert "loopback, private or link-local" in attempt.last_error and receiver.requests == []


def test_strangers_cannot_register_on_a_datanet_or_read_its_deliveries(
    receiver, resolved, django_capture_on_commit_callbacks
):
    datanet, alice, curators, record = resolved()
    stranger = UserFactory()
    for someone in (stranger, curators[0], alice):  # not the owner: not even a curator or contributor
        with pytest.raises(Forbidden):
            webhooks.endpoint_create(actor=someone, url=receiver.url, event_types=["record.resolved"], datanet=datanet)
    api = APIClient()
    api.force_authenticate(stranger)
    answer = api.post(
        "/api/webhooks/",
        {"url": receiver.url, "event_types": ["record.resolved"], "datanet": datanet.slug},
        format="json",
    )
    assert answer.status_code == 404 and answer.json()["code"] == "not_found"  # the Datanet is private
    member = APIClient()
    member.force_authenticate(curators[0])
    answer = member.post(
        "/api/webhooks/",
        {"url": receiver.url, "event_types": ["record.resolved"], "datanet": datanet.slug},
        format="json",
    )
    assert answer.status_code == 403 and answer.json()["code"] == "forbidden"
    endpoint, _ = webhooks.endpoint_create(
        actor=datanet.owner, url=receiver.url, event_types=["record.resolved"], datanet=datanet
    )
    resolve(curators, record, django_capture_on_commit_callbacks)
    send_all()
    assert api.get(f"/api/webhooks/{endpoint.pk}/deliveries/").status_code == 404
    assert api.get(f"/api/webhooks/{endpoint.pk}/").status_code == 404
    assert rows_of(api.get("/api/webhooks/").json()) == []
    assert api.post(f"/api/webhooks/{endpoint.pk}/enable/").status_code == 404
    assert api.delete(f"/api/webhooks/{endpoint.pk}/").status_code == 404
    page = APIClient()
    page.force_login(stranger)
    assert page.get(reverse("watch:endpoint", args=[endpoint.pk])).status_code == 404
    owner = APIClient()
    owner.force_authenticate(datanet.owner)
    [row] = rows_of(owner.get(f"/api/webhooks/{endpoint.pk}/deliveries/").json())
    assert row["status"] == "succeeded" and row["attempt_log"][0]["status_code"] == 200
    assert "secret" not in owner.get(f"/api/webhooks/{endpoint.pk}/").json()


def test_the_api_shows_the_secret_once_and_checks_event_types(receiver, resolved):
    datanet, *_ = resolved()
    api = APIClient()
    api.force_authenticate(datanet.owner)
    bad = api.post("/api/webhooks/", {"url": receiver.url, "event_types": ["record.deleted"]}, format="json")
    assert bad.status_code == 400
    made = api.post(
        "/api/webhooks/",
        {"url": receiver.url, "event_types": ["snapshot.published"], "datanet": datanet.slug},
        format="json",
    )
    assert made.status_code == 201 and made.json()["secret"].startswith("whsec_")
    assert made.json()["secret"] == WebhookEndpoint.objects.get().secret
    rows = rows_of(api.get("/api/webhooks/").json())
    assert rows and all("secret" not in r for r in rows)
    types = [t["type"] for t in APIClient().get("/api/webhooks/event-types/").json()]
    assert "proposal.executed" in types and "epoch.settled" in types


def test_a_personal_endpoint_hears_only_its_owners_events(receiver, resolved, django_capture_on_commit_callbacks):
    datanet, alice, curators, record = resolved()
    bob = UserFactory()
    Membership.objects.create(datanet=datanet, user=bob, role=Membership.Role.CONTRIBUTOR)
    mine, _ = webhooks.endpoint_create(actor=alice, url=receiver.url, event_types=["record.resolved"])
    theirs, _ = webhooks.endpoint_create(actor=bob, url=receiver.url, event_types=["record.resolved"])
    resolve(curators, record, django_capture_on_commit_callbacks)
    assert list(WebhookDelivery.objects.values_list("endpoint_id", flat=True)) == [mine.pk]
    # Once alice can no longer see the private Datanet, she no longer hears about it.
    Membership.objects.filter(user=alice).delete()
    with django_capture_on_commit_callbacks(execute=True):
        event_emit("record.resolved", datanet_id=datanet.pk, user_ids=[alice.pk], data={"record": record.pk})
    assert WebhookDelivery.objects.count() == 1


def test_nothing_is_announced_when_the_transaction_rolls_back(receiver, resolved, django_capture_on_commit_callbacks):
    datanet, alice, curators, record = resolved()
    webhooks.endpoint_create(actor=datanet.owner, url=receiver.url, event_types=["record.resolved"], datanet=datanet)
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                for c in curators:
                    services.vote_cast(curator=c, record_id=record.pk, decision="approve")
                raise RuntimeError("a later step failed")
    assert not WebhookDelivery.objects.exists()


def test_the_pages_register_an_endpoint_and_show_its_secret_once(receiver, resolved, client):
    datanet, *_ = resolved()
    client.force_login(datanet.owner)
    page = client.post(
        reverse("watch:endpoints"),
        {"url": receiver.url, "datanet": datanet.slug, "event_types": ["snapshot.published", "record.resolved"]},
        follow=True,
    ).content.decode()
    secret = WebhookEndpoint.objects.get().secret
    assert secret in page
    assert secret not in client.get(reverse("watch:endpoints")).content.decode()  # once
    stranger = UserFactory()
    client.force_login(stranger)
    page = client.post(
        reverse("watch:endpoints"), {"url": receiver.url, "datanet": datanet.slug, "event_types": ["record.resolved"]}
    ).content.decode()
    assert WebhookEndpoint.objects.count() == 1  # the stranger's form does not even offer the Datanet
    assert json.dumps(datanet.slug) not in page


def test_an_endpoint_for_a_private_datanet_answers_an_outsider_like_a_missing_datanet() -> None:
    datanet = DatanetFactory(is_public=False)
    api = APIClient()
    api.force_authenticate(UserFactory())
    body = {"url": "https://example.com/hook", "event_types": ["record.resolved"]}
    answers = [api.post("/api/webhooks/", {**body, "datanet": slug}, format="json") for slug in (datanet.slug, "nope")]
    assert [a.status_code for a in answers] == [404, 404]
    assert datanet.title not in answers[0].content.decode() and not WebhookEndpoint.objects.exists()
