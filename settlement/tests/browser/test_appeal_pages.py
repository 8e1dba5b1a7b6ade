"""Appeals in real Chromium, as each party: the contributor appeals a rejection from the record page and a penalty
from the earnings page; a drawn curator finds the appeal in their queue and votes; the owner decides one that fell
to them; the stats page shows alpha and standing. Screenshots land in var/screenshots/appeal-*.png."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.tests.factories import UserFactory
from datanets import services
from datanets.models import Appeal
from datanets.tests.browser.conftest import log_in, screenshot
from datanets.tests.factories import DatanetFactory, add_curators
from datanets.tests.test_appeals import pending_records
from settlement import rewards
from settlement.models import Penalty
from settlement.tests.factories import model_version

pytestmark = pytest.mark.browser


def test_contributor_curator_and_owner_walk_the_appeal_pages(new_page: Any, transactional_db: None) -> None:
    datanet = DatanetFactory(title="Support tickets", slug="support-tickets", appeal_panel=2)
    curators = add_curators(datanet, 4)
    alice = UserFactory(username="alice")
    records = pending_records(datanet, alice, 6)
    for i, record in enumerate(records[1:]):
        services.vote_cast(curator=curators[0], record_id=record.pk, decision="approve")
        services.vote_cast(curator=curators[i % 2 + 1], record_id=record.pk, decision="approve")
    rejected = records[0]
    for curator in curators[:2]:
        services.vote_cast(curator=curator, record_id=rejected.pk, decision="reject", reason="Not a support ticket.")
    version = model_version(datanet=datanet)
    penalty = Penalty.objects.create(
        account=alice,
        datanet=datanet,
        record=records[1],
        version=version,
        epoch=rewards.epoch_open_get(),
        points=1,
        value=-0.02,
        reason=f"Record #{records[1].pk} has a negative KNN-Shapley value.",
    )

    contributor = new_page()
    log_in(contributor, "alice")
    contributor.goto(rejected.get_absolute_url())
    expect(contributor.get_by_test_id("appeal-form")).to_be_visible()
    contributor.locator("textarea[name=reason]").fill("It is a ticket: the customer asks about a refund.")
    screenshot(contributor, "appeal-1-contributor-record")
    contributor.get_by_test_id("appeal-button").click()
    expect(contributor.get_by_test_id("appeal-outcome")).to_have_text("Open")
    expect(contributor.get_by_test_id("appeal-panel")).to_be_visible()
    screenshot(contributor, "appeal-2-contributor-status")
    appeal = Appeal.objects.get(kind="rejection")
    panel = [a.curator for a in appeal.assignments.all()]
    assert {u.pk for u in panel} <= {curators[2].pk, curators[3].pk}

    contributor.goto("/rewards/")
    contributor.get_by_test_id("penalties").locator("input[name=reason]").fill("The label is right.")
    screenshot(contributor, "appeal-3a-contributor-earnings-penalty")
    contributor.get_by_test_id("penalty-appeal-button").click()
    expect(contributor.get_by_test_id("appeal-panel")).to_be_visible()
    screenshot(contributor, "appeal-3-contributor-penalty-appeal")
    # Its panel lets the deadline pass without a vote: it falls to the owner.
    Appeal.objects.filter(kind="penalty").update(deadline=timezone.now() - timedelta(minutes=1))

    curator = new_page()
    log_in(curator, panel[0].username)
    curator.goto(f"/d/{datanet.slug}/appeals/")
    expect(curator.get_by_test_id("appeals-to-judge")).to_contain_text(f"#{appeal.pk}")
    screenshot(curator, "appeal-4-curator-queue")
    curator.get_by_test_id("appeals-to-judge").get_by_role("link", name=f"#{appeal.pk}").click()
    curator.locator("textarea[name=reason]").fill("A refund question is a support ticket.")
    curator.get_by_role("button", name="Overturn").click()
    expect(curator.get_by_test_id("appeal-votes")).to_contain_text("A refund question")
    screenshot(curator, "appeal-5-curator-voted")

    second = new_page()
    log_in(second, panel[1].username)
    second.goto(appeal.get_absolute_url())
    expect(second.get_by_test_id("appeal-votes")).not_to_contain_text("A refund question")  # blind until decided
    second.locator("textarea[name=reason]").fill("Agreed, on topic.")
    second.get_by_role("button", name="Overturn").click()
    expect(second.get_by_test_id("appeal-outcome")).to_have_text("Overturned")

    contributor.goto(appeal.get_absolute_url())
    expect(contributor.get_by_test_id("appeal-outcome-reason")).to_contain_text("Agreed, on topic.")
    screenshot(contributor, "appeal-6-contributor-outcome")

    owner = new_page()
    log_in(owner, datanet.owner.username)
    owner.goto(f"/d/{datanet.slug}/appeals/")
    expect(owner.get_by_test_id("appeals-to-judge")).to_contain_text("Penalty")
    screenshot(owner, "appeal-7-owner-queue")
    penalty_appeal = Appeal.objects.get(kind="penalty")
    owner.goto(penalty_appeal.get_absolute_url())
    expect(owner.get_by_test_id("appeal-decider")).to_contain_text("after the panel missed its deadline")
    owner.locator("textarea[name=reason]").fill("The label matches the text.")
    owner.get_by_role("button", name="Overturn").click()
    expect(owner.get_by_test_id("appeal-outcome")).to_have_text("Overturned")
    screenshot(owner, "appeal-8-owner-decided")
    assert Penalty.objects.get(pk=penalty.pk).overturn is not None

    owner.goto(f"/d/{datanet.slug}/stats/")
    expect(owner.get_by_test_id("agreement")).to_contain_text("Krippendorff")
    screenshot(owner, "appeal-9-stats")
