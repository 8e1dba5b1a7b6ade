from __future__ import annotations

import pytest
from django.urls import reverse
from eth_account import Account
from eth_account.messages import encode_defunct
from rest_framework.test import APIClient

from accounts import services
from accounts.models import ApiToken, AuditEvent
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_signup_login_logout_and_password_change(client):
    resp = client.post(
        reverse("accounts:signup"),
        {
            "username": "newbie",
            "email": "",
            "password1": "a-long-pass-phrase",
            "password2": "a-long-pass-phrase",
        },
    )
    assert resp.status_code == 302
    assert client.get(reverse("datanets:list")).context["user"].username == "newbie"
    resp = client.post(
        reverse("accounts:password_change"),
        {
            "old_password": "a-long-pass-phrase",
            "new_password1": "another-pass-phrase",
            "new_password2": "another-pass-phrase",
        },
    )
    assert resp.status_code == 302
    client.post(reverse("accounts:logout"))
    assert not client.get(reverse("datanets:list")).context["user"].is_authenticated
    assert client.login(username="newbie", password="another-pass-phrase")


def test_signup_rejects_mismatched_passwords(client):
    resp = client.post(
        reverse("accounts:signup"), {"username": "x", "password1": "a-long-pass", "password2": "b-long-pass"}
    )
    assert resp.status_code == 200
    assert "didn’t match" in resp.content.decode() or "didn't match" in resp.content.decode()


def test_token_authenticates_until_revoked():
    user = UserFactory()
    token, raw = services.token_create(user=user, name="laptop")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/me/").json()["username"] == user.username
    services.token_revoke(user=user, token_id=token.pk)
    resp = api.get("/api/me/")
    assert resp.status_code == 401
    assert "revoked" in resp.json()["detail"]
    assert ApiToken.objects.get(pk=token.pk).token_hash != raw  # only the hash is stored


def test_request_without_login_is_refused_with_a_message():
    resp = APIClient().get("/api/me/")
    assert resp.status_code in (401, 403)
    assert "credentials" in resp.json()["detail"].lower()


def test_unknown_token_is_refused():
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION="Bearer dn_not-a-real-token")
    resp = api.get("/api/me/")
    assert resp.status_code == 401 and "Unknown API token" in resp.json()["detail"]


def test_tokens_page_creates_shows_once_and_revokes(client):
    user = UserFactory()
    client.force_login(user)
    form = {"name": "ci", "scopes": ["read", "infer"], "expires": "30", "password": "pass-word-123"}
    wrong = client.post(reverse("accounts:tokens"), {**form, "password": "guess"})
    assert "Your password is not right" in wrong.content.decode() and not user.api_tokens.exists()
    resp = client.post(reverse("accounts:tokens"), form, follow=True)
    raw = resp.context["new_token"]
    assert raw.startswith("dn_") and raw in resp.content.decode()
    assert raw not in client.get(reverse("accounts:tokens")).content.decode()
    token = user.api_tokens.get()
    assert token.scopes == ["read", "infer"] and token.expires_at is not None
    client.post(reverse("accounts:token_revoke", args=[token.pk]))
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_wallet_link_with_a_real_signature():
    user = UserFactory()
    acct = Account.create()
    challenge = services.wallet_challenge_create(user=user, address=acct.address.lower())
    signature = acct.sign_message(encode_defunct(text=challenge.message)).signature.hex()
    services.wallet_link(user=user, nonce=challenge.nonce, signature="0x" + signature.removeprefix("0x"))
    user.refresh_from_db()
    assert user.wallet_address == acct.address
    assert services.reward_address(user=user) == acct.address
    assert AuditEvent.objects.filter(action="wallet.link").exists()
    with pytest.raises(Exception, match="already used"):
        services.wallet_link(user=user, nonce=challenge.nonce, signature=signature)


def test_wallet_link_refuses_a_signature_from_another_key():
    user = UserFactory()
    acct, other = Account.create(), Account.create()
    challenge = services.wallet_challenge_create(user=user, address=acct.address)
    signature = other.sign_message(encode_defunct(text=challenge.message)).signature.hex()
    with pytest.raises(Exception, match="not by"):
        services.wallet_link(user=user, nonce=challenge.nonce, signature=signature)
    user.refresh_from_db()
    assert user.wallet_address == ""


def test_wallet_link_through_the_api():
    user = UserFactory()
    acct = Account.create()
    api = APIClient()
    api.force_authenticate(user)
    ch = api.post("/api/wallet/challenge/", {"address": acct.address}, format="json").json()
    sig = acct.sign_message(encode_defunct(text=ch["message"])).signature.hex()
    wrong = api.post("/api/wallet/link/", {"nonce": ch["nonce"], "signature": sig, "password": "x"}, format="json")
    assert wrong.status_code == 403 and "password is not right" in wrong.json()["detail"]
    link = {"nonce": ch["nonce"], "signature": sig, "password": "pass-word-123"}
    resp = api.post("/api/wallet/link/", link, format="json")
    assert resp.status_code == 200 and resp.json()["wallet_address"] == acct.address
    bad = api.post("/api/wallet/challenge/", {"address": "0x123"}, format="json")
    assert bad.status_code == 400 and "not an Ethereum address" in bad.json()["detail"]


def test_rewards_need_a_linked_wallet():
    with pytest.raises(Exception, match="Link a wallet"):
        services.reward_address(user=UserFactory())
