"""Issue 12, oracles: a private Datanet answers a stranger like a missing one, from the services too (never a 403
that says "this Datanet is private")."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from core.errors import NotFound
from datanets import services
from datanets.tests.factories import review_records, snapshot_with

pytestmark = pytest.mark.django_db


def test_a_strangers_export_of_a_private_snapshot_is_a_404_everywhere() -> None:
    datanet, snapshot = snapshot_with(review_records(4), is_public=False, title="Ward notes")
    stranger = UserFactory()
    with pytest.raises(NotFound) as refused:
        services.snapshot_export_request(actor=stranger, snapshot=snapshot, fmt="jsonl")
    assert "private" not in refused.value.message and "Ward notes" not in refused.value.message
    api = APIClient()
    api.force_login(stranger)
    response = api.post(f"/api/snapshots/{snapshot.pk}/exports/", {"format": "jsonl"}, format="json")
    missing = api.post("/api/snapshots/987654/exports/", {"format": "jsonl"}, format="json")
    assert response.status_code == missing.status_code == 404 and response.json()["code"] == "not_found"
    page = Client()
    page.force_login(stranger)
    assert page.post(f"/d/{datanet.slug}/v/{snapshot.version}/export/", {"format": "jsonl"}).status_code == 404
    owner = APIClient()
    owner.force_login(datanet.owner)
    assert owner.post(f"/api/snapshots/{snapshot.pk}/exports/", {"format": "jsonl"}, format="json").status_code == 202


def test_a_strangers_contribution_to_a_private_datanet_is_answered_like_a_missing_datanet() -> None:
    datanet, _ = snapshot_with(review_records(2), is_public=False, title="Ward notes")
    with pytest.raises(NotFound) as refused:
        services.contribution_from_paste(user=UserFactory(), datanet=datanet, text='{"text": "x"}', fmt="jsonl")
    assert "private" not in refused.value.message
