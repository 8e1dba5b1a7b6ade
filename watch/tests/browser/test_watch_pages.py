"""The webhook and explorer pages in real Chromium: an owner adds an endpoint (secret shown once), an event reaches
a real receiver and shows in the delivery log, a failing endpoint is disabled with a notice; an anonymous visitor
browses the explorer and finds a receipt and an anchor by search, and never a private Datanet's."""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import expect
from standardwebhooks.webhooks import Webhook

from accounts.tests.factories import UserFactory
from datanets import services
from datanets.models import Record, Snapshot
from datanets.tests.browser.conftest import log_in, screenshot
from datanets.tests.factories import snapshot_with
from settlement.models import Epoch, Settlement
from settlement.tests.factories import model_version, ppm_shares, receipt
from watch import webhooks
from watch.models import WebhookDelivery
from watch.tests.receiver import Receiver

pytestmark = pytest.mark.browser


@pytest.fixture
def receiver(settings: Any) -> Any:
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    settings.WEBHOOK_DISABLE_AFTER = 2
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    r = Receiver().start()
    yield r
    r.stop()


def send_due() -> None:
    for d in WebhookDelivery.objects.filter(status__in=["pending", "retrying"]):
        webhooks.delivery_attempt(delivery_id=d.pk, now=timezone.now() + timezone.timedelta(hours=1))


def test_an_owner_adds_an_endpoint_and_watches_its_deliveries(page: Any, receiver: Receiver) -> None:
    owner = UserFactory(username="olga")
    datanet, first = snapshot_with([{"text": "fine", "label": "positive"}], owner=owner, title="Support tickets")
    record = Record.objects.get(datanet=datanet)
    log_in(page, "olga")
    page.get_by_role("link", name="Webhooks").click()
    expect(page.get_by_role("heading", name="Webhooks")).to_be_visible()
    screenshot(page, "watch-01-webhooks-empty")
    page.get_by_label("URL").fill(receiver.url)
    page.get_by_label("Events of").select_option(datanet.slug)
    page.get_by_label("snapshot.published", exact=False).check()
    page.get_by_role("button", name="Add endpoint").click()
    secret = page.get_by_test_id("secret").inner_text().strip()
    assert secret.startswith("whsec_")
    screenshot(page, "watch-02-secret-shown-once")
    page.reload()
    expect(page.get_by_test_id("secret-once")).to_have_count(0)  # a reload does not show it again
    expect(page.get_by_test_id("endpoints").get_by_role("link")).to_have_count(1)  # nor add a second endpoint

    Record.objects.create(
        datanet=datanet,
        contribution=record.contribution,
        contributor=record.contributor,
        line_no=2,
        data={"text": "broken", "label": "negative"},
        content_hash="e" * 64,
        label="negative",
        status="approved",
    )
    services.snapshot_publish(actor=owner, datanet=datanet)
    send_due()
    assert Webhook(secret).verify(receiver.requests[0].body, receiver.requests[0].headers)["type"] == (
        "snapshot.published"
    )
    page.get_by_role("link", name=receiver.url).click()
    log = page.get_by_test_id("deliveries")
    expect(log).to_contain_text("snapshot.published")
    expect(log).to_contain_text("Delivered")
    expect(log).to_contain_text("200")
    screenshot(page, "watch-03-delivery-log")

    receiver.script = [500]
    for _ in range(2):
        Record.objects.filter(pk=record.pk).update(content_hash=os.urandom(32).hex())
        services.snapshot_publish(actor=owner, datanet=datanet)
        send_due()
    page.reload()
    expect(page.get_by_test_id("disabled-notice")).to_contain_text("Disabled after 2 failed attempts in a row")
    expect(page.get_by_test_id("deliveries")).to_contain_text("Answered HTTP 500")
    screenshot(page, "watch-04-disabled-notice")
    page.get_by_role("button", name="Enable again").click()
    expect(page.get_by_test_id("disabled-notice")).to_have_count(0)


def test_an_anonymous_visitor_explores_and_searches(page: Any) -> None:
    public = snapshot_with([{"text": "a", "label": "positive"}], title="Open reviews")[0]
    private = snapshot_with([{"text": "b", "label": "positive"}], title="Hidden clinic notes", is_public=False)[0]
    shown = receipt(model_version(public), ppm_shares({public.owner: 1}))
    hidden = receipt(model_version(private), ppm_shares({private.owner: 1}))
    now = timezone.now()
    epoch = Epoch.objects.create(number=1, status="settled", opened_at=now, closed_at=now, settled_at=now)
    anchor = Settlement.objects.create(
        epoch=epoch,
        state="confirmed",
        chain_id=31337,
        distributor="0x" + "ab" * 20,
        root="0x" + os.urandom(32).hex(),
        data_hash="0x" + os.urandom(32).hex(),
        tx_hash="0x" + os.urandom(32).hex(),
        block_number=12,
        leaf_count=3,
        dump_name="-",
    )
    page.goto("/")
    page.get_by_role("link", name="Explorer").click()
    expect(page.get_by_test_id("anchors")).to_contain_text(anchor.root)
    expect(page.get_by_test_id("verify-command")).to_contain_text("python manage.py verify_epoch 1 --dump http")
    expect(page.get_by_test_id("snapshots")).to_contain_text("Open reviews")
    expect(page.get_by_test_id("snapshots")).not_to_contain_text("Hidden clinic notes")
    expect(page.get_by_test_id("proposals")).to_contain_text("No proposal has been executed yet")
    screenshot(page, "watch-05-explorer")
    search = page.get_by_label("Search the explorer")
    search.fill(shown.pk)
    search.press("Enter")
    expect(page.get_by_test_id("receipt-id")).to_have_text(shown.pk)
    expect(page.get_by_test_id("input-hidden")).to_be_visible()
    screenshot(page, "watch-06-receipt")
    page.get_by_label("Search the explorer").fill(hidden.pk) if page.get_by_label(
        "Search the explorer"
    ).count() else None
    page.goto(f"/explorer/search/?q={hidden.pk}")
    expect(page.get_by_test_id("search-message")).to_contain_text("Nothing public matches")
    page.get_by_label("Search the explorer").fill(anchor.tx_hash)
    page.get_by_label("Search the explorer").press("Enter")
    expect(page.get_by_test_id("anchors")).to_contain_text(anchor.tx_hash)
    screenshot(page, "watch-07-search-anchor")
    assert Snapshot.objects.filter(datanet=private).exists()
