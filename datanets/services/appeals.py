"""Appeals: a party appeals a decision once; curators who did not make it, drawn by standing, judge it before a
deadline; with too few of them, or when the deadline passes undecided, the Datanet's owner does. Every step is
audited; an overturn undoes the decision through its kind (``datanets.appeals``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import User
from core.errors import Conflict, Forbidden, NotFound, UserError
from core.events import event_emit
from datanets import appeals as appeal_kinds
from datanets import selectors
from datanets.draw import draw_seed, weighted_draw
from datanets.models import Appeal, AppealAssignment, AppealVote, Record


def appeal_deadline_hours() -> int:
    return int(getattr(settings, "APPEAL_DEADLINE_HOURS", 72))


def appeal_file(*, appellant: User, kind: str, object_id: str | int, reason: str) -> Appeal:
    """Appeal one decision, with a reason; it goes to a panel drawn by standing, or to the owner."""
    reason = (reason or "").strip()
    if not reason:
        raise UserError("Say why the decision is wrong: the curators who judge the appeal read your reason.")
    try:
        registered = appeal_kinds.kind_for(kind)
    except LookupError as exc:
        raise UserError(str(exc)) from None
    target = registered.target(str(object_id))
    if target is None or not selectors.can_view(appellant, target.datanet):
        raise NotFound(registered.refusal)
    if target.party_id != appellant.pk:
        raise Forbidden("Only the contributor this decision was about can appeal it.")
    datanet = target.datanet
    with transaction.atomic():
        existing = Appeal.objects.select_for_update().filter(kind=kind, object_id=str(object_id)).first()
        if existing is not None:
            raise Conflict(
                f"This decision was already appealed (appeal #{existing.pk}, {existing.get_status_display().lower()})"
                "; each decision can be appealed once.",
                extra={"appeal": existing.pk},
            )
        excluded = {appellant.pk, *target.decided_by}
        standings = selectors.curator_standings(datanet)
        candidates = [(uid, s.draw_weight) for uid, s in standings.items() if uid not in excluded]
        seed = draw_seed("appeal", kind, object_id, appellant.pk)
        panel = weighted_draw(candidates, datanet.appeal_panel, seed) if len(candidates) >= datanet.appeal_panel else []
        try:
            with transaction.atomic():
                appeal = Appeal.objects.create(
                    kind=kind,
                    object_id=str(object_id),
                    datanet=datanet,
                    appellant=appellant,
                    reason=reason[:5000],
                    summary=target.summary[:300],
                    decider=Appeal.Decider.PANEL if panel else Appeal.Decider.OWNER,
                    seed=seed,
                    deadline=timezone.now() + timedelta(hours=appeal_deadline_hours()),
                )
        except IntegrityError:
            raise Conflict("This decision was already appealed; each decision can be appealed once.") from None
        appeal.deciders.set(target.decided_by)
        AppealAssignment.objects.bulk_create(
            [AppealAssignment(appeal=appeal, curator_id=uid, weight=w, position=i) for i, (uid, w) in enumerate(panel)]
        )
        audit_record(
            actor=appellant,
            action="appeal.file",
            target=appeal,
            after={
                "kind": kind,
                "object_id": str(object_id),
                "reason": reason[:500],
                "decider": appeal.decider,
                "seed": seed,
                "candidates": [[uid, round(w, 6)] for uid, w in sorted(candidates)],
                "panel": [[uid, round(w, 6)] for uid, w in panel],
                "deadline": appeal.deadline.isoformat(),
            },
        )
    return appeal


def _fall_to_owner(appeal: Appeal, *, why: str) -> None:
    appeal.decider = Appeal.Decider.OWNER
    appeal.deadline = timezone.now() + timedelta(hours=appeal_deadline_hours())
    appeal.save(update_fields=["decider", "deadline"])
    audit_record(actor=None, action="appeal.fallback", target=appeal, after={"why": why})


def _decide(appeal: Appeal, *, status: str, actor: User | None, reason: str) -> None:
    appeal.status = status
    appeal.decided_at = timezone.now()
    appeal.decided_by = actor
    appeal.outcome_reason = reason[:2000]
    appeal.save(update_fields=["status", "decided_at", "decided_by", "outcome_reason"])
    changes: dict[str, Any] = {}
    if status == Appeal.Status.OVERTURNED:
        registered = appeal_kinds.kind_for(appeal.kind)
        changes = registered.overturn(appeal, actor)
        for listener in registered.listeners:
            listener(appeal, actor)
    audit_record(
        actor=actor,
        action=f"appeal.{status}",
        target=appeal,
        after={
            "kind": appeal.kind,
            "object_id": appeal.object_id,
            "decider": appeal.decider,
            "votes": [[v.voter_id, v.decision] for v in appeal.votes.all()],
            "reason": reason[:500],
            "changes": changes,
        },
    )
    event_emit(
        "appeal.decided",
        datanet_id=appeal.datanet_id,
        user_ids=[appeal.appellant_id],
        data={
            "appeal": appeal.pk,
            "kind": appeal.kind,
            "object_id": appeal.object_id,
            "status": appeal.status,
            "decider": appeal.decider,
            "decided_at": appeal.decided_at.isoformat(),
        },
    )


def _tally(appeal: Appeal) -> None:
    """Decide a panel's appeal once a majority of the panel agrees (a tie upholds the decision)."""
    size = appeal.assignments.count()
    majority = size // 2 + 1
    votes = list(appeal.votes.all())
    overturn = sum(v.decision == AppealVote.Decision.OVERTURN for v in votes)
    uphold = len(votes) - overturn
    reasons = "; ".join(f"{v.get_decision_display()}: {v.reason}" for v in votes)
    if overturn >= majority:
        _decide(appeal, status=Appeal.Status.OVERTURNED, actor=None, reason=reasons)
    elif uphold > size - majority or len(votes) == size:
        _decide(appeal, status=Appeal.Status.UPHELD, actor=None, reason=reasons)


def _expire_locked(appeal: Appeal, now: datetime) -> bool:
    """A panel's appeal past its deadline falls to the owner (the votes cast stay on it). Returns whether it did."""
    if appeal.is_open and appeal.decider == Appeal.Decider.PANEL and appeal.deadline <= now:
        n = appeal.votes.count()
        _fall_to_owner(appeal, why=f"the deadline passed with {n} of {appeal.assignments.count()} panel votes")
        return True
    return False


def appeals_expire(*, now: datetime | None = None) -> int:
    """Send every panel appeal past its deadline to its Datanet's owner. Safe to run any number of times."""
    now = now or timezone.now()
    moved = 0
    due = Appeal.objects.filter(status=Appeal.Status.OPEN, decider=Appeal.Decider.PANEL, deadline__lte=now)
    for appeal_id in due.values_list("pk", flat=True):
        with transaction.atomic():
            appeal = Appeal.objects.select_for_update().filter(pk=appeal_id).first()
            if appeal is not None and _expire_locked(appeal, now):
                moved += 1
    return moved


def appeal_vote(*, voter: User, appeal_id: int, decision: str, reason: str) -> Appeal:
    """A drawn curator's vote on an appeal, or the owner's decision once it has fallen to them."""
    if decision not in AppealVote.Decision.values:
        raise UserError("Vote 'uphold' (the decision stands) or 'overturn' (it is undone).")
    reason = (reason or "").strip()
    if not reason:
        raise UserError("Give a reason: the parties read it with the outcome.")
    with transaction.atomic():  # committed on its own: a refused late vote must not undo the fallback
        due = Appeal.objects.select_for_update().filter(pk=appeal_id).first()
        moved = due is not None and _expire_locked(due, timezone.now())
    with transaction.atomic():
        appeal = Appeal.objects.select_for_update().select_related("datanet").filter(pk=appeal_id).first()
        if appeal is None or not selectors.can_view(voter, appeal.datanet):
            raise NotFound(f"There is no appeal #{appeal_id}.")
        if not selectors.appeal_is_party(voter, appeal):  # a curator not drawn too: only parties see an appeal
            raise NotFound(f"There is no appeal #{appeal_id}.")
        if voter.pk == appeal.appellant_id:
            raise Forbidden("This is your own appeal, so you cannot judge it.")
        if moved and not (selectors.is_owner(voter, appeal.datanet) or voter.is_staff):
            raise Conflict(
                "The appeal's deadline passed before your vote, so it went to the Datanet's owner to decide."
            )
        if not appeal.is_open:
            raise Conflict(f"This appeal is already decided ({appeal.get_status_display().lower()}).")
        if appeal.decider == Appeal.Decider.OWNER:
            if not (selectors.is_owner(voter, appeal.datanet) or voter.is_staff):
                raise Forbidden("This appeal is with the Datanet's owner to decide.")
        elif not appeal.assignments.filter(curator=voter).exists():
            raise Forbidden("Only the curators drawn for this appeal vote on it; you were not drawn.")
        try:
            with transaction.atomic():
                AppealVote.objects.create(appeal=appeal, voter=voter, decision=decision, reason=reason[:1000])
        except IntegrityError:
            raise Conflict("You already voted on this appeal; each judge votes once.") from None
        audit_record(actor=voter, action="appeal.vote", target=appeal, after={"decision": decision, "reason": reason})
        if appeal.decider == Appeal.Decider.OWNER:
            status = Appeal.Status.OVERTURNED if decision == AppealVote.Decision.OVERTURN else Appeal.Status.UPHELD
            _decide(appeal, status=status, actor=voter, reason=reason)
        else:
            _tally(appeal)
    appeal.refresh_from_db()
    return appeal


# ---- the kind this app owns: a rejection by curators' votes --------------------------------------------------


def _rejection_target(object_id: str) -> appeal_kinds.AppealTarget | None:
    if not object_id.isdigit():
        return None
    record = Record.objects.select_related("datanet").filter(pk=int(object_id), status=Record.Status.REJECTED).first()
    if record is None:
        return None
    rejecters = list(record.votes.filter(decision="reject").values_list("curator_id", flat=True))
    if not rejecters:
        return None  # rejected by a confirmed flag, not by votes: that flag is what to appeal
    voters = list(record.votes.values_list("curator_id", flat=True))
    given = record.votes.filter(decision="reject").values_list("reason", flat=True)
    reasons = "; ".join(dict.fromkeys(r for r in given if r))  # each distinct reason once, in vote order
    return appeal_kinds.AppealTarget(
        datanet=record.datanet,
        party_id=record.contributor_id,
        decided_by=voters,
        summary=f"Record #{record.pk} rejected by curators" + (f" ({reasons})" if reasons else ""),
        url=record.get_absolute_url(),
        record_id=record.pk,
    )


def _rejection_overturn(appeal: Appeal, actor: User | None) -> dict[str, Any]:
    """The record is approved again: it enters the next snapshot and earns credit from the next epoch on."""
    record = Record.objects.select_for_update().get(pk=int(appeal.object_id))
    before = {"status": record.status}
    record.status = Record.Status.APPROVED
    record.resolved_at = timezone.now()
    record.save(update_fields=["status", "resolved_at"])
    audit_record(
        actor=actor,
        action="record.restore",
        target=record,
        before=before,
        after={"status": record.status, "appeal": appeal.pk},
    )
    return {"record": record.pk, "status": [before["status"], record.status]}


def register_rejection_kind() -> None:
    appeal_kinds.register(
        "rejection",
        label="Rejection",
        target=_rejection_target,
        overturn=_rejection_overturn,
        refusal="There is no rejected record with that id that curators' votes rejected; a record rejected by a "
        "confirmed flag is appealed through the flag.",
    )
