"""One definition of a contributor's credit: the contributor page adds up the same receipt shares settlement pays by."""

from __future__ import annotations

import pytest

from accounts.tests.factories import UserFactory
from attribution.credit import contributor_credit
from attribution.models import Citation
from settlement import rewards
from settlement.models import LedgerEntry
from settlement.splits import PPM
from settlement.tests.factories import model_version, ppm_shares, receipt, records_with_values

pytestmark = pytest.mark.django_db


def test_page_and_ledger_use_the_same_shares(client) -> None:
    alice, bob = UserFactory(), UserFactory()
    version = model_version()
    a_record, b_record = records_with_values(version, {alice: [0.1], bob: [0.1]})
    paid = []
    for weights in ({alice: 3, bob: 1}, {alice: 1}):
        made = receipt(version, ppm_shares(weights), fee=10)
        # the top-k lists both records, whatever the credit: a citation's own credit_ppm is its score share
        for rank, record in enumerate((a_record, b_record)):
            Citation.objects.create(
                receipt=made, record=record, contributor=record.contributor, rank=rank, score=1.0, credit_ppm=500_000
            )
        paid.append(made)
    rewards.receipts_accrue()

    credit = contributor_credit(user=alice)
    assert credit.receipts == 2 and credit.share_ppm == 750_000 + PPM
    assert contributor_credit(user=bob).share_ppm == 250_000  # not the 1,000,000 its citations' credit_ppm add to
    earned = {
        username: sum(int(e.amount) for e in LedgerEntry.objects.filter(kind="contributor", account__username=username))
        for username in (alice.username, bob.username)
    }
    contributors_part = 10 * rewards.token_units_per_credit() * 6_000 // 10_000
    assert earned[alice.username] == contributors_part * 750_000 // PPM + contributors_part
    assert earned[bob.username] == contributors_part * 250_000 // PPM

    page = client.get(f"/attribution/contributors/{bob.username}/").content.decode()
    assert "credit 25%" in page and "Cited in 2 receipts" in page
