"""Receipt challenges: anyone who can see a receipt may recompute it within a window after it was made. A
mismatch takes the receipt out of the open epoch's accrual (its ledger entries are removed) and keeps it out until
the Datanet's owner or staff resolve the challenge."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.credits import credits_refund
from accounts.models import User
from attribution.receipts import receipt_recompute
from attribution.selectors import receipt_visible
from core.errors import Conflict, Forbidden, NotFound, QuotaExceeded, UserError
from settlement.models import Epoch, LedgerEntry, ReceiptAccrual, ReceiptChallenge

Status = ReceiptChallenge.Status
CHALLENGES_PER_HOUR = 10


def challenge_window() -> timedelta:
    return timedelta(hours=int(getattr(settings, "RECEIPT_CHALLENGE_HOURS", 14 * 24)))


def receipt_challenge(*, actor: User, receipt_id: str) -> ReceiptChallenge:
    """Recompute the receipt from the published snapshot and artifact, and record whether it matches."""
    if not actor.is_authenticated:
        raise Forbidden("Log in to challenge a receipt.")
    receipt = receipt_visible(actor, receipt_id)
    recent = ReceiptChallenge.objects.filter(challenger=actor, created_at__gte=timezone.now() - timedelta(hours=1))
    if recent.count() >= CHALLENGES_PER_HOUR:  # the page path too; the API adds its throttle
        raise QuotaExceeded(
            f"You challenged {CHALLENGES_PER_HOUR} receipts in the last hour; each one rebuilds a model's index. "
            "Try again later."
        )
    closes = receipt.created_at + challenge_window()
    if timezone.now() > closes:
        raise Conflict(f"The challenge window for this receipt closed on {closes:%Y-%m-%d %H:%M} UTC.")
    if ReceiptChallenge.objects.filter(receipt_id=receipt.id, status__in=[Status.OPEN, Status.VOIDED]).exists():
        raise Conflict("This receipt already has a mismatch on record; its accrual is frozen until it is resolved.")
    body, recomputed = receipt_recompute(receipt.id)  # minutes at most, outside any lock
    differences = sorted(k for k in set(body) | set(receipt.body) if body.get(k) != receipt.body.get(k))
    with transaction.atomic():
        epoch = Epoch.objects.select_for_update().filter(status=Epoch.Status.OPEN).first()
        status = Status.MATCHED if recomputed == receipt.id else Status.OPEN
        frozen_epoch = settled_epoch = None
        if status == Status.OPEN:
            accrual = ReceiptAccrual.objects.select_for_update().filter(receipt_id=receipt.id).first()
            if accrual is not None and epoch is not None and accrual.epoch_id == epoch.pk:
                LedgerEntry.objects.filter(epoch=epoch, receipt_id=receipt.id).delete()
                accrual.delete()
                frozen_epoch = epoch.number
            elif accrual is not None:
                settled_epoch = accrual.epoch.number
        try:
            with transaction.atomic():
                challenge = ReceiptChallenge.objects.create(
                    receipt_id=receipt.id,
                    challenger=actor,
                    recomputed_id=recomputed,
                    differences=differences,
                    status=status,
                    frozen_epoch=frozen_epoch,
                    settled_epoch=settled_epoch,
                )
        except IntegrityError:
            raise Conflict("This receipt already has a mismatch on record; it is frozen until resolved.") from None
        audit_record(
            actor=actor,
            action=f"receipt.challenge.{'match' if status == Status.MATCHED else 'mismatch'}",
            target=challenge,
            after={
                "receipt": receipt.id,
                "recomputed": recomputed,
                "differences": differences,
                "frozen_epoch": frozen_epoch,
                "settled_epoch": settled_epoch,
            },
        )
    return challenge


def receipt_challenge_resolve(*, actor: User, challenge_id: int, decision: str, reason: str) -> ReceiptChallenge:
    """The receipt's Datanet owner or staff settle a mismatch: ``uphold`` (the stored receipt stands and accrues
    again) or ``void`` (it never accrues; the consumer gets the fee back unless a closed epoch already counted it)."""
    if decision not in ("uphold", "void"):
        raise UserError("Resolve a challenge with 'uphold' (the receipt stands) or 'void' (it is withdrawn).")
    reason = (reason or "").strip()
    if not reason:
        raise UserError("Say what you found: the challenger and the consumer read it.")
    with transaction.atomic():
        challenge = ReceiptChallenge.objects.select_for_update().filter(pk=challenge_id).first()
        if challenge is None:
            raise NotFound(f"There is no receipt challenge #{challenge_id}.")
        receipt = receipt_visible(actor, challenge.receipt_id)
        datanet = receipt.version.ml_model.datanet
        if not (actor.is_staff or actor.pk == datanet.owner_id):
            raise Forbidden("Only the Datanet's owner or staff resolve a receipt challenge.")
        if challenge.status != Status.OPEN:
            raise Conflict(f"This challenge is not open ({challenge.get_status_display().lower()}).")
        refunded = 0
        if decision == "uphold":
            challenge.status = Status.UPHELD
        else:
            challenge.status = Status.VOIDED
            if not ReceiptAccrual.objects.filter(receipt_id=receipt.id).exists():
                refunded = int(receipt.fee)
                credits_refund(
                    user=receipt.inference.consumer, amount=refunded, reason=f"receipt {receipt.id[:12]} voided"
                )
        challenge.resolution = reason[:2000]
        challenge.resolved_by = actor
        challenge.resolved_at = timezone.now()
        challenge.save(update_fields=["status", "resolution", "resolved_by", "resolved_at"])
        audit_record(
            actor=actor,
            action=f"receipt.challenge.{decision}",
            target=challenge,
            after={"receipt": receipt.id, "reason": reason[:500], "refunded": refunded},
        )
    return challenge
