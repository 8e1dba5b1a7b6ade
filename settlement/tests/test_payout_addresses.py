"""Payout addresses: one published for an account is never another's; a conflict or a just-changed wallet holds back
that one account, never the whole epoch."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from eth_account import Account
from eth_account.messages import encode_defunct
from web3 import Web3

from accounts import services as account_services
from accounts.models import User
from settlement import anchoring, epochs, proofs, rewards
from settlement.models import PayoutAddress, Settlement
from settlement.tests.factories import linked_user, model_version, ppm_shares, receipt

pytestmark = pytest.mark.django_db(transaction=True)


def settle(number: int, web3: Web3) -> Settlement:
    settlement = anchoring.epoch_settle_start(actor=None, number=number)
    return anchoring.settlement_run(settlement.pk, web3=web3, timeout=60, poll=0.05)


def close_with(shares: dict[User, int]) -> int:
    receipt(model_version(), ppm_shares(shares), fee=100)
    return epochs.epoch_close(actor=None, number=rewards.epoch_open_get().number).number


def link(user: User, key: str) -> None:
    address = Account.from_key(key).address
    challenge = account_services.wallet_challenge_create(user=user, address=address)
    signature = Account.sign_message(encode_defunct(text=challenge.message), private_key=key).signature.to_0x_hex()
    account_services.wallet_link(user=user, nonce=challenge.nonce, signature=signature)


def test_an_address_paid_to_one_account_cannot_be_linked_to_another(settle_chain: Web3, settings) -> None:
    settings.WALLET_CHANGE_HOLD_HOURS = 0
    alice, bob = linked_user(username="alice"), linked_user(username="bob")
    old_key = "0x" + "5a" * 32
    User.objects.filter(pk=alice.pk).update(wallet_address=Account.from_key(old_key).address)
    alice.refresh_from_db()
    assert settle(close_with({alice: 1, bob: 1}), settle_chain).state == Settlement.State.CONFIRMED
    link(alice, "0x" + "5b" * 32)  # alice moves on; her old address keeps its leaf
    with pytest.raises(ValidationError, match="already received rewards for another account"):
        link(bob, old_key)


def test_a_conflicting_account_is_left_out_and_everyone_else_settles(settle_chain: Web3, settings) -> None:
    settings.WALLET_CHANGE_HOLD_HOURS = 0
    alice, bob, carol = (linked_user(username=n) for n in ("alice", "bob", "carol"))
    first = settle(close_with({alice: 1, bob: 1}), settle_chain)
    assert first.state == Settlement.State.CONFIRMED
    # An address already published for alice ends up on carol's account (linked before the check, or by hand).
    User.objects.filter(pk=alice.pk).update(wallet_address=Account.create().address)
    User.objects.filter(pk=carol.pk).update(wallet_address=PayoutAddress.objects.get(account=alice).address)
    second = settle(close_with({bob: 1, carol: 1}), settle_chain)
    assert second.state == Settlement.State.CONFIRMED, (second.alarm, second.last_error)
    dump = proofs.dump_bytes(second).decode()
    assert "already paid to another account" in dump and '"account":"carol"' in dump
    bob.refresh_from_db()
    assert int(proofs.proof_get(epoch_number=second.epoch.number, address=bob.wallet_address)["cumulative"]) > 0


def test_a_just_changed_wallet_waits_for_the_hold(settle_chain: Web3, settings) -> None:
    settings.WALLET_CHANGE_HOLD_HOURS = 48
    alice = linked_user(username="alice")
    User.objects.filter(pk=alice.pk).update(wallet_linked_at=timezone.now() - timedelta(days=10))
    assert settle(close_with({alice: 1}), settle_chain).state == Settlement.State.CONFIRMED
    link(alice, "0x" + "6c" * 32)
    held = settle(close_with({alice: 1}), settle_chain)
    assert held.state == Settlement.State.CONFIRMED and "payouts to it wait 48 h" in proofs.dump_bytes(held).decode()
    assert not PayoutAddress.objects.filter(address=Account.from_key("0x" + "6c" * 32).address).exists()
    User.objects.filter(pk=alice.pk).update(wallet_linked_at=timezone.now() - timedelta(hours=49))
    later = settle(close_with({alice: 1}), settle_chain)
    new = PayoutAddress.objects.get(address=Account.from_key("0x" + "6c" * 32).address)
    assert later.state == Settlement.State.CONFIRMED and int(new.cumulative) > 0
