"""Review: a curator's vote, and the record's resolution when the Datanet's quorum is reached."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import User
from core.errors import Conflict, Forbidden, NotFound, UserError
from datanets import selectors
from datanets.models import Record, Vote


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
        try:
            with transaction.atomic():
                Vote.objects.create(record=record, curator=curator, decision=decision, reason=reason)
        except IntegrityError:
            raise Conflict("You already voted on this record; each curator votes once.") from None
        before = {"status": record.status, "approvals": record.approvals, "rejections": record.rejections}
        if decision == Vote.Decision.APPROVE:
            record.approvals += 1
        else:
            record.rejections += 1
        extra = selectors.extra_approvals_for(record.contributor_id, datanet)  # penalized: more approvals
        if record.approvals >= datanet.approvals_needed + extra:
            record.status = Record.Status.APPROVED
        elif record.rejections >= datanet.rejections_needed:
            record.status = Record.Status.REJECTED
        if record.status != Record.Status.PENDING:
            record.resolved_at = timezone.now()
        record.save(update_fields=["approvals", "rejections", "status", "resolved_at"])
        audit_record(
            actor=curator,
            action=f"record.vote.{decision}",
            target=record,
            before=before,
            after={
                "status": record.status,
                "approvals": record.approvals,
                "rejections": record.rejections,
                "reason": reason,
            },
        )
    return record
