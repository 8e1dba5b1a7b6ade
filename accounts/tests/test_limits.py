"""Abuse limits: login lockout, sign-up, token and challenge caps, API throttles; held in the shared cache."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import close_old_connections
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services
from accounts.models import ApiToken, WalletChallenge
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ADDRESS = "0x" + "ab" * 20


def _login(client: Client, username: str, password: str):
    return client.post(reverse("accounts:login"), {"username": username, "password": password})


def test_wrong_passwords_lock_the_account_even_against_the_right_password(settings) -> None:
    settings.LOGIN_FAILURES_PER_USER = 5
    user = UserFactory(username="target")
    user.set_password("the-right-password")
    user.save()
    client = Client()
    for _ in range(5):
        assert _login(client, "target", "wrong").status_code == 200
    locked = _login(client, "Target", "the-right-password")  # usernames lock case-insensitively
    assert locked.status_code == 200 and "_auth_user_id" not in client.session
    assert "Too many failed sign-ins" in locked.content.decode() and "15 minutes" in locked.content.decode()


def test_a_successful_login_resets_the_count(settings) -> None:
    settings.LOGIN_FAILURES_PER_USER = 3
    user = UserFactory(username="forgetful")
    user.set_password("the-right-password")
    user.save()
    client = Client()
    for _ in range(2):
        _login(client, "forgetful", "wrong")
    assert _login(client, "forgetful", "the-right-password").status_code == 302
    client.post(reverse("accounts:logout"))
    for _ in range(2):
        _login(client, "forgetful", "wrong")
    assert _login(client, "forgetful", "the-right-password").status_code == 302


def test_one_address_cannot_spray_passwords_over_many_accounts(settings) -> None:
    settings.LOGIN_FAILURES_PER_IP = 4
    victim = UserFactory(username="victim")
    victim.set_password("the-right-password")
    victim.save()
    client = Client()
    for i in range(4):
        _login(client, f"user{i}", "guess")
    assert "Too many failed sign-ins" in _login(client, "victim", "the-right-password").content.decode()


def test_signups_from_one_address_are_capped(settings) -> None:
    settings.SIGNUPS_PER_HOUR_PER_IP = 2
    for i in range(2):
        form = {"username": f"new{i}", "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"}
        assert Client().post(reverse("accounts:signup"), form).status_code == 302
    form = {"username": "new9", "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"}
    refused = Client().post(reverse("accounts:signup"), form)
    assert refused.status_code == 429 and "Too many sign-up attempts" in refused.content.decode()


def test_active_tokens_are_capped_and_revoking_frees_a_slot() -> None:
    user = UserFactory()
    tokens = [services.token_create(user=user, name=f"t{i}")[0] for i in range(services.MAX_ACTIVE_TOKENS)]
    api = APIClient()
    api.force_authenticate(user)
    refused = api.post("/api/tokens/", {"name": "one more", "password": "pass-word-123"}, format="json")
    assert refused.status_code == 429 and refused.json()["code"] == "quota_exceeded"
    assert "revoke one" in refused.json()["detail"]
    services.token_revoke(user=user, token_id=tokens[0].pk)
    assert api.post("/api/tokens/", {"name": "one more", "password": "pass-word-123"}, format="json").status_code == 201


@pytest.mark.django_db(transaction=True)
def test_the_token_cap_holds_across_parallel_requests() -> None:
    user = UserFactory()
    for i in range(services.MAX_ACTIVE_TOKENS - 2):
        services.token_create(user=user, name=f"t{i}")
    errors: list[str] = []

    def create(i: int) -> None:
        try:
            services.token_create(user=user, name=f"parallel{i}")
        except Exception as exc:  # the cap or SQLite's lock timeout: either way, no token over the cap
            errors.append(type(exc).__name__)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=create, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ApiToken.objects.filter(user=user, revoked_at__isnull=True).count() <= services.MAX_ACTIVE_TOKENS
    assert errors, "some of the six parallel requests must have been refused"


def test_open_challenges_are_capped_and_expired_ones_cleaned() -> None:
    user = UserFactory()
    for _ in range(services.MAX_OPEN_CHALLENGES):
        services.wallet_challenge_create(user=user, address=ADDRESS)
    with pytest.raises(services.QuotaExceeded, match="unsigned wallet challenges"):
        services.wallet_challenge_create(user=user, address=ADDRESS)
    WalletChallenge.objects.filter(user=user).update(expires_at=timezone.now() - timedelta(seconds=1))
    services.wallet_challenge_create(user=user, address=ADDRESS)
    assert WalletChallenge.objects.filter(user=user).count() == 1


def test_token_minting_through_the_api_is_throttled(settings) -> None:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "tokens": "3/hour"},
    }
    from rest_framework.settings import api_settings
    from rest_framework.throttling import SimpleRateThrottle

    SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
    try:
        user = UserFactory()
        api = APIClient()
        api.force_authenticate(user)
        codes = [
            api.post("/api/tokens/", {"name": f"t{i}", "password": "pass-word-123"}, format="json").status_code
            for i in range(4)
        ]
        assert codes == [201, 201, 201, 429]
        assert api.get("/api/tokens/").status_code == 200  # reads are not under the write scope
    finally:
        SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
