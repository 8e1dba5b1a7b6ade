"""Scoped, expiring API tokens: a stolen token can do only what it was given, cannot mint another or re-point the
rewards, and dies with a password change."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services
from accounts.models import ApiToken
from accounts.scopes import required_scope
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db
PASSWORD = "pass-word-123"


def bearer(raw: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return api


def test_a_read_token_reads_but_cannot_write() -> None:
    user = UserFactory()
    _, raw = services.token_create(user=user, name="reader", scopes=["read"])
    api = bearer(raw)
    assert api.get("/api/me/").status_code == 200
    created = api.post("/api/datanets/", {"title": "Mine", "slug": "mine", "domain": "x"}, format="json")
    assert created.status_code == 403
    assert "lacks the 'contribute' scope" in created.json()["detail"] and "has read" in created.json()["detail"]


def test_a_contribute_token_cannot_vote_and_a_review_token_cannot_create() -> None:
    user = UserFactory()
    _, contribute = services.token_create(user=user, name="c", scopes=["read", "contribute"])
    _, review = services.token_create(user=user, name="r", scopes=["read", "review"])
    vote = bearer(contribute).post("/api/records/1/votes/", {"decision": "approve"}, format="json")
    assert vote.status_code == 403 and "'review' scope" in vote.json()["detail"]
    body = {"title": "Another", "slug": "another", "domain": "x"}
    assert bearer(review).post("/api/datanets/", body, format="json").status_code == 403
    assert bearer(review).get("/api/me/").status_code == 200


def test_scopes_follow_the_kind_of_request() -> None:
    class TrainingRunViewSet:
        action = "create"

    class ModelVersionViewSet:
        action = "infer"

    class RecordViewSet:
        action = "votes"

    assert required_scope(TrainingRunViewSet(), "POST") == "train"
    assert required_scope(ModelVersionViewSet(), "POST") == "infer"
    assert required_scope(RecordViewSet(), "POST") == "review"
    assert required_scope(RecordViewSet(), "GET") == "read"


def test_an_expired_token_is_refused_with_the_date() -> None:
    user = UserFactory()
    token, raw = services.token_create(user=user, name="old", expires_in_days=1)
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    refused = bearer(raw).get("/api/me/")
    assert refused.status_code == 401 and "expired on" in refused.json()["detail"]


def test_a_token_cannot_mint_a_token_or_link_a_wallet_even_with_every_scope() -> None:
    user = UserFactory()
    _, raw = services.token_create(user=user, name="stolen")
    api = bearer(raw)
    minted = api.post("/api/tokens/", {"name": "mine now", "password": PASSWORD}, format="json")
    assert minted.status_code == 403 and "browser session" in minted.json()["detail"]
    challenge = api.post("/api/wallet/challenge/", {"address": "0x" + "cd" * 20}, format="json")
    assert challenge.status_code == 403
    link = api.post("/api/wallet/link/", {"nonce": "n", "signature": "0x00", "password": PASSWORD}, format="json")
    assert link.status_code == 403
    assert ApiToken.objects.filter(user=user).count() == 1


def test_a_session_mints_a_token_only_with_the_password() -> None:
    user = UserFactory()
    api = APIClient()
    api.force_login(user)
    wrong = api.post("/api/tokens/", {"name": "ci", "password": "nope"}, format="json")
    assert wrong.status_code == 403 and "password is not right" in wrong.json()["detail"]
    made = api.post("/api/tokens/", {"name": "ci", "password": PASSWORD, "scopes": ["read"]}, format="json")
    assert made.status_code == 201 and made.json()["scopes"] == ["read"] and made.json()["expires_at"]


def test_changing_the_password_revokes_every_token() -> None:
    user = UserFactory()
    _, raw = services.token_create(user=user, name="laptop")
    client = Client()
    client.force_login(user)
    changed = client.post(
        reverse("accounts:password_change"),
        {"old_password": PASSWORD, "new_password1": "a-new-pass-phrase", "new_password2": "a-new-pass-phrase"},
        follow=True,
    )
    assert changed.status_code == 200 and "1 API token(s) were revoked" in changed.content.decode()
    refused = bearer(raw).get("/api/me/")
    assert refused.status_code == 401 and "revoked by a password change" in refused.json()["detail"]
