"""Adaptive quorum: when curators disagree, the record asks one more curator at a time, drawn by standing, up to
the cap in the Datanet's review policy; the drawn curator's turn expires; disagreement stays blind while pending."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AuditEvent
from accounts.tests.factories import UserFactory
from core.errors import Conflict
from datanets import selectors, services
from datanets.models import Record, VoteRequest
from datanets.tests.factories import DatanetFactory, add_curators
from datanets.tests.test_appeals import pending_records

pytestmark = pytest.mark.django_db


def vote(curator, record, decision: str) -> Record:
    return services.vote_cast(curator=curator, record_id=record.pk, decision=decision, reason="because")


def test_disagreement_asks_one_drawn_curator_and_needs_one_more_vote_a_side() -> None:
    datanet = DatanetFactory(approvals_needed=2, rejections_needed=2, max_extra_votes=2)
    curators = add_curators(datanet, 5)
    record = pending_records(datanet, UserFactory(), 1)[0]
    vote(curators[0], record, "approve")
    record = vote(curators[1], record, "reject")
    assert record.status == "pending" and record.extra_votes == 1
    request = VoteRequest.objects.get(record=record)
    assert request.curator_id in {c.pk for c in curators[2:]} and request.seed
    assert AuditEvent.objects.filter(action="record.vote_request", target_id=str(record.pk)).exists()
    drawn = next(c for c in curators if c.pk == request.curator_id)
    others = [c for c in curators[2:] if c.pk != drawn.pk]
    # Until the drawn curator votes, the record is theirs: it leaves the others' queues and refuses their vote.
    assert record.pk not in [r.pk for r in selectors.review_queue(datanet=datanet, curator=others[0])]
    assert [r.record_id for r in selectors.vote_requests_for(drawn, datanet)] == [record.pk]
    with pytest.raises(Conflict, match="drawn by standing"):
        vote(others[0], record, "approve")
    record = vote(drawn, record, "approve")
    assert record.status == "pending"  # 2 approvals against 1 rejection now need 3
    record = vote(others[0], record, "approve")
    assert record.status == "approved" and record.approvals == 3


def test_the_cap_bounds_the_extra_votes() -> None:
    datanet = DatanetFactory(approvals_needed=2, rejections_needed=2, max_extra_votes=1)
    curators = add_curators(datanet, 6)
    record = pending_records(datanet, UserFactory(), 1)[0]
    vote(curators[0], record, "approve")
    vote(curators[1], record, "reject")
    drawn = VoteRequest.objects.get(record=record).curator
    record = vote(drawn, record, "reject")
    rest = [c for c in curators if c.pk not in {curators[0].pk, curators[1].pk, drawn.pk}]
    record = vote(rest[0], record, "approve")  # 2 against 2: the cap of 1 extra is reached, no new request
    assert record.extra_votes == 1 and VoteRequest.objects.filter(record=record).count() == 1
    record = vote(rest[1], record, "reject")
    assert record.status == "rejected" and record.rejections == 3


def test_without_extra_votes_the_quorum_is_as_before() -> None:
    datanet = DatanetFactory(approvals_needed=2, rejections_needed=2, max_extra_votes=0)
    c = add_curators(datanet, 3)
    record = pending_records(datanet, UserFactory(), 1)[0]
    vote(c[0], record, "approve")
    vote(c[1], record, "reject")
    assert vote(c[2], record, "approve").status == "approved" and not VoteRequest.objects.exists()


def test_an_expired_request_opens_the_record_to_every_curator_and_disagreement_stays_blind() -> None:
    datanet = DatanetFactory(approvals_needed=2, rejections_needed=2)
    c = add_curators(datanet, 4)
    record = pending_records(datanet, UserFactory(), 1)[0]
    vote(c[0], record, "approve")
    vote(c[1], record, "reject")
    request = VoteRequest.objects.get(record=record)
    api = APIClient()
    api.force_authenticate(c[2])
    assert api.get(f"/api/records/{record.pk}/").json()["extra_votes"] is None
    VoteRequest.objects.filter(pk=request.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    other = next(u for u in c[2:] if u.pk != request.curator_id)
    assert vote(other, record, "approve").status == "pending"
