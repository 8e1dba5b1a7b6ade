"""Review: a curator's vote, and the record's resolution when the Datanet's quorum is reached.

Adaptive quorum: each time the votes on a record disagree once more (the smaller side grows), the record needs one
more vote on each side, up to the Datanet's ``max_extra_votes``, and asks one more curator, drawn by standing among
those who have not voted; until that curator votes (or the request expires) the record's next vote is theirs.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import User
from core.errors import Conflict, Forbidden, NotFound, UserError
from core.events import event_emit
from datanets import selectors
from datanets.draw import draw_seed, weighted_draw
from datanets.models import Datanet, Record, Vote, VoteRequest


def vote_request_hours() -> int:
    return int(getattr(settings, "VOTE_REQUEST_HOURS", 48))


def disputed_extra(record: Record, datanet: Datanet) -> int:
    """Extra votes per side the record needs because curators disagree on it (capped by the review policy)."""
    return min(datanet.max_extra_votes, min(record.approvals, record.rejections))


def _request_vote(record: Record, datanet: Datanet, round_: int) -> VoteRequest | None:
    """Ask one more curator, drawn by standing among those who have not voted on or been asked about the record."""
    voted = set(record.votes.values_list("curator_id", flat=True))
    asked = set(record.vote_requests.values_list("curator_id", flat=True))
    standings = selectors.curator_standings(datanet)
    candidates = [
        (uid, s.draw_weight)
        for uid, s in standings.items()
        if uid not in voted and uid not in asked and uid != record.contributor_id
    ]
    seed = draw_seed("vote", record.pk, round_)
    drawn = weighted_draw(candidates, 1, seed)
    if not drawn:
        return None  # nobody left to ask: any curator who has not voted may still vote
    curator_id, weight = drawn[0]
    request = VoteRequest.objects.create(
        record=record,
        curator_id=curator_id,
        round=round_,
        seed=seed,
        weight=weight,
        expires_at=timezone.now() + timedelta(hours=vote_request_hours()),
    )
    audit_record(
        actor=None,
        action="record.vote_request",
        target=record,
        after={"round": round_, "curator": curator_id, "weight": round(weight, 6), "seed": seed},
    )
    return request


def vote_cast(*, curator: User, record_id: int, decision: str, reason: str = "") -> Record:
    """Record a curator's vote; resolve the record when the Datanet's quorum is reached."""
    if decision not in Vote.Decision.values:
        raise UserError("A vote is 'approve' or 'reject'.")
    reason = reason.strip()[:500]
    with transaction.atomic():
        record = Record.objects.select_for_update().select_related("datanet").filter(pk=record_id).first()
        if record is None:
            raise NotFound(f"There is no record #{record_id}.")
        datanet = record.datanet
        if not selectors.is_curator(curator, datanet):
            raise Forbidden("Only this Datanet's curators can vote on its records.")
        if record.contributor_id == curator.pk:
            raise Forbidden("You contributed this record, so you cannot vote on it.")
        if record.status in (Record.Status.DUPLICATE, Record.Status.NEAR_DUPLICATE):
            raise Conflict("This record is a duplicate of an earlier one and is not reviewed.")
        if record.status != Record.Status.PENDING:
            raise Conflict(f"This record was already {record.status} by quorum; your vote is not needed.")
        if decision == Vote.Decision.REJECT and not reason:
            raise UserError("Say why you reject the record, so the contributor can learn from it.")
        request = selectors.vote_request_open(record)
        if request is not None and request.curator_id != curator.pk:
            raise Conflict(
                "This record's next vote was asked of a curator drawn by standing; "
                f"it opens to others if they have not voted by {request.expires_at:%Y-%m-%d %H:%M} UTC."
            )
        try:
            with transaction.atomic():
                Vote.objects.create(record=record, curator=curator, decision=decision, reason=reason)
        except IntegrityError:
            raise Conflict("You already voted on this record; each curator votes once.") from None
        if request is not None:
            VoteRequest.objects.filter(pk=request.pk).update(answered_at=timezone.now())
        else:
            record.vote_requests.filter(curator=curator, answered_at__isnull=True).update(answered_at=timezone.now())
        before = {"status": record.status, "approvals": record.approvals, "rejections": record.rejections}
        if decision == Vote.Decision.APPROVE:
            record.approvals += 1
        else:
            record.rejections += 1
        extra = selectors.extra_approvals_for(record.contributor_id, datanet)  # penalized: more approvals
        disputed = disputed_extra(record, datanet)
        if record.approvals >= datanet.approvals_needed + extra + disputed:
            record.status = Record.Status.APPROVED
        elif record.rejections >= datanet.rejections_needed + disputed:
            record.status = Record.Status.REJECTED
        if record.status != Record.Status.PENDING:
            record.resolved_at = timezone.now()
        asks_more = record.status == Record.Status.PENDING and disputed > record.extra_votes
        record.extra_votes = max(record.extra_votes, disputed)
        record.save(update_fields=["approvals", "rejections", "status", "resolved_at", "extra_votes"])
        audit_record(
            actor=curator,
            action=f"record.vote.{decision}",
            target=record,
            before=before,
            after={
                "status": record.status,
                "approvals": record.approvals,
                "rejections": record.rejections,
                "extra_votes": record.extra_votes,
                "reason": reason,
            },
        )
        if asks_more:
            _request_vote(record, datanet, record.extra_votes)
        if record.status != Record.Status.PENDING:
            event_emit(
                "record.resolved",
                datanet_id=datanet.pk,
                user_ids=[record.contributor_id],
                data={
                    "record": record.pk,
                    "datanet": datanet.slug,
                    "status": record.status,
                    "content_hash": record.content_hash,
                    "approvals": record.approvals,
                    "rejections": record.rejections,
                    "resolved_at": record.resolved_at.isoformat(),
                },
            )
    return record
