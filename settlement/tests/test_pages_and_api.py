"""Rewards pages and API on the embedded chain: admin closes and settles, contributor sees and claims, demo."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from web3 import Web3

from accounts.tests.factories import UserFactory
from settlement import anchoring, rewards
from settlement.models import Settlement
from settlement.tests.factories import linked_user, model_version, ppm_shares, receipt

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def embedded(settle_chain: Web3, node: Any) -> Web3:
    if node.kind != "embedded":
        pytest.skip("pages are chain-agnostic; the chain behaviour is covered on anvil elsewhere")
    return settle_chain


def test_admin_closes_settles_and_contributor_claims(embedded: Web3) -> None:
    admin = UserFactory(is_staff=True)
    alice = linked_user()
    receipt(model_version(), ppm_shares({alice: 1}), fee=50)
    number = rewards.epoch_open_get().number
    staff, contributor, anonymous = Client(), Client(), Client()
    staff.force_login(admin)
    contributor.force_login(alice)

    assert staff.post(f"/rewards/epochs/{number}/close/").status_code == 302
    page = staff.get(f"/rewards/epochs/{number}/")
    assert alice.username in page.content.decode()
    assert contributor.post(f"/api/rewards/epochs/{number + 1}/close/").status_code == 403
    answer = staff.post(f"/api/rewards/epochs/{number}/settle/")
    assert answer.status_code == 202
    settlement = Settlement.objects.get(epoch__number=number)
    anchoring.settlement_run(settlement.pk, web3=embedded, timeout=60, poll=0.05)  # what the worker does

    detail = staff.get(f"/api/rewards/epochs/{number}/").json()
    assert detail["settlement"]["state"] == "confirmed" and detail["settlement"]["tx_hash"]
    dump = anonymous.get(detail["dump_url"])
    assert dump.status_code == 200 and dump["X-Data-Hash"] == detail["settlement"]["data_hash"]
    proof = anonymous.get(f"/api/rewards/proofs/{number}/{alice.wallet_address}/").json()
    assert int(proof["cumulative"]) == 50 * 10**18 * 6 // 10 and proof["calldata"].startswith("0x")
    assert anonymous.get(f"/api/rewards/proofs/{number}/0x{'12' * 20}/").status_code == 404
    assert "Relay my claim" in contributor.get("/rewards/claim/").content.decode()
    assert contributor.post("/rewards/claim/").status_code == 302
    status = contributor.get("/api/rewards/claims/").json()
    assert status["balance"] == proof["cumulative"] and status["claimable"] == "0"
    again = contributor.post("/api/rewards/claims/")
    assert again.status_code == 409 and "Nothing to claim" in again.json()["detail"]
    assert contributor.get("/rewards/").status_code == 200
    earnings = contributor.get("/api/rewards/earnings/").json()
    assert earnings["per_epoch"][0]["amount"] == proof["cumulative"]
    assert contributor.get("/rewards/claim/proof.json").json()["proof"] == proof["proof"]
