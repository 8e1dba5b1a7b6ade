"""Curators vote blind: until a record resolves nobody but staff sees its votes or their counts; pending records
are shown only to their contributor, the owner, the curators and staff; private records answer 404 to strangers."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from datanets import services
from datanets.models import Record
from datanets.tests.factories import DatanetFactory, add_curators, distinct_records, ingest, jsonl

pytestmark = pytest.mark.django_db


def api_as(user) -> APIClient:
    api = APIClient()
    if user is not None:
        api.force_authenticate(user)
    return api


@pytest.fixture
def world(tmp_path):
    datanet = DatanetFactory(approvals_needed=2)
    c1, c2 = add_curators(datanet, 2)
    alice = UserFactory()
    ingest(alice, datanet, jsonl(distinct_records(2)), "a.jsonl", tmp_path)
    record = Record.objects.filter(datanet=datanet).order_by("id").first()
    services.vote_cast(curator=c1, record_id=record.pk, decision="approve")
    staff = UserFactory(is_staff=True)
    return {"datanet": datanet, "c1": c1, "c2": c2, "alice": alice, "record": record, "staff": staff}


def test_a_curator_sees_neither_the_others_votes_nor_the_counts_before_voting(world) -> None:
    record = world["record"]
    votes = api_as(world["c2"]).get(f"/api/records/{record.pk}/votes/")
    assert votes.status_code == 200 and votes.json() == []
    body = api_as(world["c2"]).get(f"/api/records/{record.pk}/").json()
    assert body["status"] == "pending" and body["approvals"] is None and body["rejections"] is None
    own = api_as(world["c1"]).get(f"/api/records/{record.pk}/votes/").json()
    assert [v["curator"] for v in own] == [world["c1"].username]  # one's own vote stays visible
    page = Client()
    page.force_login(world["c2"])
    html = page.get(record.get_absolute_url()).content.decode()
    assert "Votes stay hidden until the record resolves" in html and world["c1"].username + ":" not in html


def test_staff_see_votes_and_everyone_sees_them_once_resolved(world) -> None:
    record = world["record"]
    assert len(api_as(world["staff"]).get(f"/api/records/{record.pk}/votes/").json()) == 1
    assert api_as(world["staff"]).get(f"/api/records/{record.pk}/").json()["approvals"] == 1
    services.vote_cast(curator=world["c2"], record_id=record.pk, decision="approve")
    resolved = api_as(None).get(f"/api/records/{record.pk}/")
    assert resolved.json()["status"] == "approved" and resolved.json()["approvals"] == 2
    assert len(api_as(UserFactory()).get(f"/api/records/{record.pk}/votes/").json()) == 2


def test_pending_records_are_shown_only_to_those_who_judge_or_made_them(world) -> None:
    record, datanet = world["record"], world["datanet"]
    for who, code in ((None, 404), (UserFactory(), 404), (world["alice"], 200), (world["c2"], 200)):
        assert api_as(who).get(f"/api/records/{record.pk}/").status_code == code
    listed = api_as(UserFactory()).get(f"/api/datanets/{datanet.slug}/records/").json()["results"]
    assert record.pk not in [r["id"] for r in listed]
    owner_view = api_as(datanet.owner).get(f"/api/datanets/{datanet.slug}/records/").json()["results"]
    assert record.pk in [r["id"] for r in owner_view]


def test_a_stranger_voting_on_a_private_record_gets_the_same_404_as_for_a_missing_one(tmp_path) -> None:
    private = DatanetFactory(is_public=False)
    ingest(private.owner, private, jsonl(distinct_records(1)), "p.jsonl", tmp_path)
    record = Record.objects.get(datanet=private)
    stranger = api_as(UserFactory())
    hidden = stranger.post(f"/api/records/{record.pk}/votes/", {"decision": "approve"}, format="json")
    missing = stranger.post("/api/records/999999/votes/", {"decision": "approve"}, format="json")
    assert hidden.status_code == missing.status_code == 404
    assert stranger.get(f"/api/records/{record.pk}/votes/").status_code == 404
