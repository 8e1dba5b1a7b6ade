"""Epoch pages tell the truth (issue 15): an open epoch's counters move when receipts are counted, amounts carry
their unit, and a non-admin meets a page of ours that says who may enter, never the Django admin's login."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.tests.factories import UserFactory
from settlement import epochs, rewards
from settlement.tests.factories import linked_user, model_version, ppm_shares, receipt

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_counting_receipts_moves_the_open_epochs_counters() -> None:
    admin = UserFactory(is_staff=True)
    alice = linked_user()
    version = model_version()
    for _ in range(4):
        receipt(version, ppm_shares({alice: 1}), fee=10)
    number = rewards.epoch_open_get().number
    client = client_for(admin)

    response = client.post(f"/rewards/epochs/{number}/accrue/", follow=True)
    page = response.content.decode()
    assert f"Counted 4 new receipt(s) into the open epoch {number}: 4 receipt(s) and 40 tokens of fees" in page
    assert '<dd data-testid="receipts-so-far">4</dd>' in page and '<dd data-testid="fees-so-far">40</dd>' in page
    assert "Fees counted so far (tokens)" in page

    epochs.epoch_close(actor=admin, number=number)
    closed = client.get(f"/rewards/epochs/{number}/").content.decode()
    assert "Fees in (tokens)" in closed and 'Allocations <span class="muted">(tokens)</span>' in closed


def test_a_non_admin_at_an_epoch_page_meets_our_page_not_the_admin_login() -> None:
    number = rewards.epoch_open_get().number
    anonymous = Client().get(f"/rewards/epochs/{number}/")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/?next=")

    response = client_for(UserFactory()).get(f"/rewards/epochs/{number}/")
    assert response.status_code == 403
    page = response.content.decode()
    assert "/admin/login/" not in page and "only they open these pages" in page and "Rewards page" in page
    for action in ("close", "accrue", "settle"):
        assert client_for(UserFactory()).post(f"/rewards/epochs/{number}/{action}/").status_code == 403
    assert client_for(UserFactory()).get("/rewards/epochs/").status_code == 403
