"""Issue 12, finding 5: after a wallet change the account's owner gets a notice on the wallet page and by email
that says payouts to the new address are held (the hold itself: settlement/tests/test_payout_addresses.py)."""

from __future__ import annotations

import pytest
from django.test import Client
from eth_account import Account
from eth_account.messages import encode_defunct

from accounts import services
from accounts.models import Notice
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def link(user, account) -> None:
    challenge = services.wallet_challenge_create(user=user, address=account.address)
    signature = account.sign_message(encode_defunct(text=challenge.message)).signature.hex()
    services.wallet_link(user=user, nonce=challenge.nonce, signature="0x" + signature.removeprefix("0x"))


def test_a_wallet_change_is_noticed_on_the_page_and_by_email(
    settings, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    settings.WALLET_CHANGE_HOLD_HOURS = 48
    user = UserFactory(email="alice@example.org")
    first, second = Account.create(), Account.create()
    with django_capture_on_commit_callbacks(execute=True):
        link(user, first)
    assert not Notice.objects.exists() and not mailoutbox  # a first link re-points nothing
    with django_capture_on_commit_callbacks(execute=True):
        link(user, second)
    notice = Notice.objects.get(user=user, kind="wallet_changed")
    assert (
        first.address in notice.message and second.address in notice.message and "held for 48 hours" in notice.message
    )
    assert notice.emailed_at is not None
    assert len(mailoutbox) == 1 and mailoutbox[0].to == ["alice@example.org"]
    assert "held for 48 hours" in mailoutbox[0].body and "change your password" in mailoutbox[0].body
    page = Client()
    page.force_login(user)
    assert notice.message in page.get("/accounts/wallet/").content.decode()
    stranger = Client()
    stranger.force_login(UserFactory())
    assert second.address not in stranger.get("/accounts/wallet/").content.decode()
