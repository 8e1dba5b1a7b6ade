"""The demo's reward set-up: wallets linked by signing real challenges, one policy, epoch 1 open; safe to run twice."""

from __future__ import annotations

import pytest
from web3 import Web3

from accounts.tests.factories import UserFactory
from datanets.tests.factories import DatanetFactory
from demo.rewards import DEMO_WALLETS, load_settlement_demo
from settlement.models import Epoch, RewardPolicy

pytestmark = pytest.mark.django_db(transaction=True)


def test_demo_links_wallets_by_signing_and_is_idempotent() -> None:
    users = {name: UserFactory(username=name) for name in DEMO_WALLETS}
    DatanetFactory(owner=users["owner"])
    load_settlement_demo(users)
    load_settlement_demo(users)
    users["alice"].refresh_from_db()
    assert users["alice"].wallet_address == Web3().eth.account.from_key(DEMO_WALLETS["alice"]).address
    assert RewardPolicy.objects.count() == 1 and Epoch.objects.get().status == Epoch.Status.OPEN
