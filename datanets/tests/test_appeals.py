"""Appeals of rejections: a panel drawn by standing from the curators who did not vote, a deadline, the owner as
fallback, every step audited, the outcome visible to the parties and nobody else; and each bad path refused."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AuditEvent
from accounts.tests.factories import UserFactory
from core.errors import Forbidden
from datanets import selectors, services
from datanets.draw import weighted_draw
from datanets.models import Appeal, Contribution, Record
from datanets.tests.factories import DatanetFactory, add_curators

pytestmark = pytest.mark.django_db


def api_as(user) -> APIClient:
    api = APIClient()
    if user is not None:
        api.force_authenticate(user)
    return api


def pending_records(datanet, contributor, n: int) -> list[Record]:
    contribution = Contribution.objects.create(
        datanet=datanet,
        contributor=contributor,
        source="paste",
        filename="x.jsonl",
        file_sha256=f"{datanet.pk}-{contributor.pk}-{Contribution.objects.count()}",
        blob_name="-",
        size_bytes=1,
    )
    return [
        Record.objects.create(
            datanet=datanet,
            contribution=contribution,
            contributor=contributor,
            line_no=i + 1,
            data={"text": f"{contributor.username} says {i}", "label": "positive"},
            content_hash=f"{contribution.pk}-{i}",
            label="positive" if i % 2 == 0 else "negative",
        )
        for i in range(n)
    ]


@pytest.fixture
def world():
    datanet = DatanetFactory(approvals_needed=2, rejections_needed=2, appeal_panel=3)
    curators = add_curators(datanet, 5)
    alice = UserFactory()
    record = pending_records(datanet, alice, 1)[0]
    for curator in curators[:2]:
        services.vote_cast(curator=curator, record_id=record.pk, decision="reject", reason="off topic")
    record.refresh_from_db()
    assert record.status == Record.Status.REJECTED
    return {"datanet": datanet, "curators": curators, "alice": alice, "record": record}


def file(world, reason: str = "It is on topic: it reviews the product.") -> Appeal:
    return services.appeal_file(appellant=world["alice"], kind="rejection", object_id=world["record"].pk, reason=reason)


def test_a_rejection_appeal_goes_to_curators_who_did_not_vote_drawn_by_a_recorded_seed(world) -> None:
    appeal = file(world)
    c = world["curators"]
    panel = list(appeal.assignments.values_list("curator_id", flat=True))
    assert appeal.decider == Appeal.Decider.PANEL and sorted(panel) == sorted(u.pk for u in c[2:])
    assert set(appeal.deciders.values_list("pk", flat=True)) == {c[0].pk, c[1].pk}
    filed = AuditEvent.objects.get(action="appeal.file", target_id=str(appeal.pk))
    # Anyone holding the recorded seed and candidates replays the same draw.
    replay = weighted_draw([tuple(x) for x in filed.after["candidates"]], 3, filed.after["seed"])
    assert [uid for uid, _ in replay] == panel
    assert appeal.deadline > timezone.now() + timedelta(hours=71)


def test_draws_follow_standing() -> None:
    """Over many seeds, a curator with twice the weight is drawn about twice as often."""
    counts = {1: 0, 2: 0, 3: 0}
    for seed in range(3000):
        for uid, _ in weighted_draw([(1, 0.2), (2, 0.4), (3, 0.05)], 1, seed):
            counts[uid] += 1
    assert 1.6 < counts[2] / counts[1] < 2.4 and counts[3] < counts[1]


def test_overturned_rejection_restores_the_record_and_is_audited(world) -> None:
    appeal = file(world)
    panel = [a.curator for a in appeal.assignments.all()]
    services.appeal_vote(voter=panel[0], appeal_id=appeal.pk, decision="overturn", reason="Clearly on topic.")
    appeal.refresh_from_db()
    assert appeal.is_open  # one of three is no majority
    decided = services.appeal_vote(voter=panel[1], appeal_id=appeal.pk, decision="overturn", reason="Agree.")
    assert decided.status == Appeal.Status.OVERTURNED and decided.decided_at is not None
    record = world["record"]
    record.refresh_from_db()
    assert record.status == Record.Status.APPROVED
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions[-5:] == ["appeal.file", "appeal.vote", "appeal.vote", "record.restore", "appeal.overturned"]
    # The two who rejected it now disagree with the outcome and with the appeal: their standing falls.
    standings = selectors.curator_standings(world["datanet"])
    rejecter = standings[world["curators"][0].pk]
    assert rejecter.appeals == 1 and rejecter.appeals_agreed == 0 and rejecter.agreed == 0
    # Too late to vote once decided.
    r = api_as(panel[2]).post(f"/api/appeals/{appeal.pk}/vote/", {"decision": "uphold", "reason": "x"}, format="json")
    assert r.status_code == 409 and r.json()["code"] == "conflict"


def test_an_upheld_appeal_leaves_the_rejection(world) -> None:
    appeal = file(world)
    panel = [a.curator for a in appeal.assignments.all()]
    services.appeal_vote(voter=panel[0], appeal_id=appeal.pk, decision="uphold", reason="Off topic indeed.")
    services.appeal_vote(voter=panel[1], appeal_id=appeal.pk, decision="uphold", reason="Agree.")
    appeal.refresh_from_db()
    world["record"].refresh_from_db()
    assert appeal.status == Appeal.Status.UPHELD and world["record"].status == Record.Status.REJECTED


def test_bad_paths_are_refused_with_a_sentence(world) -> None:
    alice, c = world["alice"], world["curators"]
    record = world["record"]
    body = {"kind": "rejection", "object_id": str(record.pk), "reason": "It is fine."}
    stranger = api_as(UserFactory()).post("/api/appeals/", body, format="json")
    assert stranger.status_code == 403 and "Only the contributor" in stranger.json()["detail"]
    assert api_as(alice).post("/api/appeals/", {**body, "reason": " "}, format="json").status_code == 400
    first = api_as(alice).post("/api/appeals/", body, format="json")
    assert first.status_code == 201
    twice = api_as(alice).post("/api/appeals/", body, format="json")
    assert twice.status_code == 409 and "appealed once" in twice.json()["detail"]
    assert Appeal.objects.count() == 1
    appeal_id = first.json()["id"]
    vote = {"decision": "overturn", "reason": "mine"}
    own = api_as(alice).post(f"/api/appeals/{appeal_id}/vote/", vote, format="json")
    assert own.status_code == 403 and "your own appeal" in own.json()["detail"]
    not_drawn = api_as(c[0]).post(f"/api/appeals/{appeal_id}/vote/", vote, format="json")
    assert not_drawn.status_code == 403 and "not drawn" in not_drawn.json()["detail"]
    outsider = api_as(UserFactory()).post(f"/api/appeals/{appeal_id}/vote/", vote, format="json")
    assert outsider.status_code == 404
    (bystander,) = add_curators(world["datanet"], 1)  # a curator who is no party reads it like a missing appeal
    voted = api_as(bystander).post(f"/api/appeals/{appeal_id}/vote/", vote, format="json")
    assert voted.status_code == 404 and voted.json()["code"] == "not_found"
    assert api_as(bystander).get(f"/api/appeals/{appeal_id}/").status_code == 404
    missing = api_as(alice).post("/api/appeals/", {**body, "object_id": "999999"}, format="json")
    assert missing.status_code == 404
    unknown = api_as(alice).post("/api/appeals/", {**body, "kind": "haircut"}, format="json")
    assert unknown.status_code == 400 and "known kinds" in unknown.json()["detail"]
    drawn = Appeal.objects.get().assignments.first().curator
    api_as(drawn).post(f"/api/appeals/{appeal_id}/vote/", vote, format="json")
    again = api_as(drawn).post(f"/api/appeals/{appeal_id}/vote/", vote, format="json")
    assert again.status_code == 409 and "already voted" in again.json()["detail"]


def test_a_vote_after_the_deadline_is_refused_and_the_appeal_falls_to_the_owner(world) -> None:
    appeal = file(world)
    drawn = appeal.assignments.first().curator
    Appeal.objects.filter(pk=appeal.pk).update(deadline=timezone.now() - timedelta(minutes=1))
    late = api_as(drawn).post(f"/api/appeals/{appeal.pk}/vote/", {"decision": "overturn", "reason": "x"}, format="json")
    assert late.status_code == 409 and "deadline passed" in late.json()["detail"]
    appeal.refresh_from_db()
    assert appeal.decider == Appeal.Decider.OWNER and appeal.is_open
    assert AuditEvent.objects.filter(action="appeal.fallback", target_id=str(appeal.pk)).exists()


def test_a_deadline_passing_with_no_votes_sends_the_appeal_to_the_owner_who_decides(world) -> None:
    appeal = file(world)
    Appeal.objects.filter(pk=appeal.pk).update(deadline=timezone.now() - timedelta(minutes=1))
    assert services.appeals_expire() == 1 and services.appeals_expire() == 0
    owner = world["datanet"].owner
    queue = api_as(owner).get("/api/appeals/?to_judge=1").json()["results"]
    assert [a["id"] for a in queue] == [appeal.pk] and queue[0]["decider"] == "owner"
    drawn = appeal.assignments.first().curator
    assert api_as(drawn).get("/api/appeals/?to_judge=1").json()["results"] == []
    decided = services.appeal_vote(voter=owner, appeal_id=appeal.pk, decision="overturn", reason="On topic.")
    assert decided.status == Appeal.Status.OVERTURNED and decided.decided_by == owner


def test_with_too_few_curators_free_the_owner_decides(tmp_path) -> None:
    datanet = DatanetFactory(appeal_panel=3)
    c1, c2 = add_curators(datanet, 2)
    alice = UserFactory()
    record = pending_records(datanet, alice, 1)[0]
    for c in (c1, c2):
        services.vote_cast(curator=c, record_id=record.pk, decision="reject", reason="bad")
    appeal = services.appeal_file(appellant=alice, kind="rejection", object_id=record.pk, reason="It is good.")
    assert appeal.decider == Appeal.Decider.OWNER and not appeal.assignments.exists()
    with pytest.raises(Forbidden):
        services.appeal_vote(voter=c1, appeal_id=appeal.pk, decision="overturn", reason="x")
    services.appeal_vote(voter=datanet.owner, appeal_id=appeal.pk, decision="uphold", reason="It is off topic.")
    appeal.refresh_from_db()
    assert appeal.status == Appeal.Status.UPHELD


def test_outcome_votes_and_reasons_are_for_the_parties_only(world) -> None:
    appeal = file(world)
    panel = [a.curator for a in appeal.assignments.all()]
    services.appeal_vote(voter=panel[0], appeal_id=appeal.pk, decision="overturn", reason="Panel reason one.")
    c, datanet = world["curators"], world["datanet"]
    other_contributor = UserFactory()
    pending_records(datanet, other_contributor, 1)
    staff = UserFactory(is_staff=True)
    parties = {
        "appellant": world["alice"],
        "panelist": panel[0],
        "other panelist": panel[1],
        "rejecting curator": c[0],
        "owner": datanet.owner,
        "staff": staff,
    }
    outsiders = {"stranger": UserFactory(), "other contributor": other_contributor}
    for name, user in parties.items():
        r = api_as(user).get(f"/api/appeals/{appeal.pk}/")
        assert r.status_code == 200, name
        page = Client()
        page.force_login(user)
        assert page.get(appeal.get_absolute_url()).status_code == 200, name
        assert appeal.pk in [a["id"] for a in api_as(user).get("/api/appeals/").json()["results"]], name
    for name, user in outsiders.items():
        assert api_as(user).get(f"/api/appeals/{appeal.pk}/").status_code == 404, name
        page = Client()
        page.force_login(user)
        assert page.get(appeal.get_absolute_url()).status_code == 404, name
        assert api_as(user).get("/api/appeals/").json()["results"] == [], name
    assert api_as(None).get(f"/api/appeals/{appeal.pk}/").status_code in (401, 403)
    # Blind while open: the other panelist and the appellant do not see the vote cast; its author does.
    assert api_as(panel[1]).get(f"/api/appeals/{appeal.pk}/").json()["votes"] == []
    assert api_as(world["alice"]).get(f"/api/appeals/{appeal.pk}/").json()["votes"] == []
    assert len(api_as(panel[0]).get(f"/api/appeals/{appeal.pk}/").json()["votes"]) == 1
    services.appeal_vote(voter=panel[1], appeal_id=appeal.pk, decision="overturn", reason="Panel reason two.")
    decided = api_as(world["alice"]).get(f"/api/appeals/{appeal.pk}/").json()
    assert decided["status"] == "overturned"
    assert sorted(v["reason"] for v in decided["votes"]) == ["Panel reason one.", "Panel reason two."]
    page = Client()
    page.force_login(world["alice"])
    html = page.get(appeal.get_absolute_url()).content.decode()
    assert "Panel reason two." in html and "Overturned" in html


def test_the_record_page_offers_the_appeal_and_then_shows_its_status(world) -> None:
    page = Client()
    page.force_login(world["alice"])
    url = world["record"].get_absolute_url()
    assert 'data-testid="appeal-button"' in page.get(url).content.decode()
    response = page.post(
        f"/d/{world['datanet'].slug}/appeals/new/",
        {"kind": "rejection", "object_id": world["record"].pk, "reason": "On topic.", "next": url},
    )
    appeal = Appeal.objects.get()
    assert response.status_code == 302 and response["Location"] == appeal.get_absolute_url()
    html = page.get(url).content.decode()
    assert 'data-testid="appeal-status"' in html and 'data-testid="appeal-button"' not in html
    drawn = Client()
    drawn.force_login(appeal.assignments.first().curator)
    queue = drawn.get(f"/d/{world['datanet'].slug}/appeals/").content.decode()
    assert f"#{appeal.pk}" in queue and "Nothing waits on you" not in queue
    drawn.post(appeal.get_absolute_url(), {"decision": "overturn", "reason": "Fine record."})
    assert appeal.votes.count() == 1
