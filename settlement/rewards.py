"""Rewards while an epoch is open: fee policies, the open epoch, receipt accrual into the ledger, and epoch pools.

Every unit that enters an epoch (receipt fees, pools) leaves it in exactly one ledger entry; rounding remainders go
to the platform. The arithmetic is ``splits`` (no Django); closing an epoch is ``epochs``, penalties ``penalties``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.credits import InsufficientCredit, credits_debit
from accounts.models import User
from attribution.credit import receipt_shares
from attribution.models import Receipt
from core.errors import Conflict, Forbidden, NotFound, UserError
from datanets.models import Datanet
from settlement.chain.config import token_units_per_credit
from settlement.models import Epoch, EpochPool, LedgerEntry, ReceiptAccrual, ReceiptChallenge, RewardPolicy
from settlement.penalties import standings_refresh
from settlement.splits import BPS, Bps, split_fee

Kind = LedgerEntry.Kind


# ---- policies ------------------------------------------------------------------------------------------------


def policy_set(
    *,
    actor: User,
    datanet: Datanet,
    platform_bps: int,
    builder_bps: int,
    curators_bps: int,
    contributors_bps: int,
    penalty_threshold: int = 3,
) -> RewardPolicy:
    if not (actor.is_staff or actor.pk == datanet.owner_id):
        raise Forbidden("Only the Datanet's owner or an admin can change how its fees split.")
    with transaction.atomic():
        policy, _ = RewardPolicy.objects.select_for_update().get_or_create(datanet=datanet)
        before = {"bps": [policy.platform_bps, policy.builder_bps, policy.curators_bps, policy.contributors_bps]}
        policy.platform_bps, policy.builder_bps = platform_bps, builder_bps
        policy.curators_bps, policy.contributors_bps = curators_bps, contributors_bps
        policy.penalty_threshold = penalty_threshold
        try:
            policy.full_clean()
        except ValidationError as exc:
            raise UserError(" ".join(exc.messages)) from None
        policy.save()
        audit_record(
            actor=actor,
            action="rewards.policy_set",
            target=policy,
            before=before,
            after={"bps": [platform_bps, builder_bps, curators_bps, contributors_bps], "threshold": penalty_threshold},
        )
        standings_refresh(datanet)
    return policy


# ---- the open epoch ------------------------------------------------------------------------------------------


def epoch_open_get() -> Epoch:
    """The open epoch; the first one is opened on first use."""
    epoch = Epoch.objects.filter(status=Epoch.Status.OPEN).first()
    if epoch is not None:
        return epoch
    with transaction.atomic():
        epoch = Epoch.objects.select_for_update().filter(status=Epoch.Status.OPEN).first()
        if epoch is None:
            last = Epoch.objects.order_by("-number").first()
            epoch = Epoch.objects.create(number=(last.number + 1) if last else 1, opened_at=timezone.now())
    return epoch


def epoch_get(number: int) -> Epoch:
    epoch = Epoch.objects.filter(number=number).first()
    if epoch is None:
        raise NotFound(f"There is no epoch {number}.")
    return epoch


# ---- accrual -------------------------------------------------------------------------------------------------


def _receipt_datanet_and_builder(receipt: Receipt) -> tuple[Datanet, User]:
    ml_model = receipt.version.ml_model
    return ml_model.datanet, ml_model.builder


def accrue_into(epoch: Epoch, receipts: Iterable[Receipt]) -> int:
    """Ledger entries for receipts not yet counted anywhere; the caller holds the epoch's lock."""
    receipts = list(receipts)
    if not receipts:
        return 0
    already = set(
        ReceiptAccrual.objects.filter(receipt_id__in=[r.id for r in receipts]).values_list("receipt_id", flat=True)
    )
    fresh = [r for r in receipts if r.id not in already]
    if not fresh:
        return 0
    units = token_units_per_credit()
    usernames = {s["contributor"] for r in fresh for s in receipt_shares(r.body)}
    users = dict(User.objects.filter(username__in=usernames).values_list("username", "pk"))
    policies: dict[int, Bps] = {}
    accruals, entries = [], []
    for receipt in fresh:
        datanet, builder = _receipt_datanet_and_builder(receipt)
        if datanet.pk not in policies:
            policies[datanet.pk] = Bps.of(RewardPolicy.objects.filter(datanet=datanet).first())
        fee_units = int(receipt.fee) * units
        all_shares = receipt_shares(receipt.body)
        shares = [s for s in all_shares if s["contributor"] in users]
        if len(shares) != len(all_shares):
            shares = []  # a contributor that no longer exists: the contributors' part goes to the platform
        split = split_fee(fee_units, policies[datanet.pk], shares)
        abstained = bool((receipt.body.get("chance") or {}).get("abstained"))
        to_pool = fee_units * policies[datanet.pk].contributors // BPS if abstained else 0
        accruals.append(
            ReceiptAccrual(
                receipt_id=receipt.id,
                epoch=epoch,
                datanet=datanet,
                fee=fee_units,
                curators_part=split.curators,
                receipt_created_at=receipt.created_at,
            )
        )
        common: dict[str, Any] = {"epoch": epoch, "datanet": datanet, "receipt_id": receipt.id}
        for username, amount_units in sorted(split.contributors.items()):
            entries.append(
                LedgerEntry(account_id=users[username], kind=Kind.CONTRIBUTOR, amount=amount_units, **common)
            )
        if split.builder:
            entries.append(LedgerEntry(account=builder, kind=Kind.BUILDER, amount=split.builder, **common))
        if to_pool:
            # No record shaped the output measurably: the contributors' part joins the Datanet's next epoch pool,
            # split by its valuing version like any pool, instead of paying the nearest record.
            memo = "receipt abstained (no record stood out from chance): the contributors' part joins the epoch pool"
            entries.append(LedgerEntry(account=None, kind=Kind.CARRY, amount=to_pool, memo=memo, **common))
        memo = "" if all_shares else "receipt has no contributor shares"
        entries.append(
            LedgerEntry(account=None, kind=Kind.PLATFORM, amount=split.platform - to_pool, memo=memo, **common)
        )
    ReceiptAccrual.objects.bulk_create(accruals, batch_size=2000)
    LedgerEntry.objects.bulk_create(entries, batch_size=2000)
    return len(fresh)


def pending_receipts(*, before: datetime | None = None) -> Any:
    """Receipts not yet counted into any epoch, oldest first; a receipt whose recomputation did not match
    (``challenges``) waits until the challenge is resolved."""
    pending = Receipt.objects.exclude(id__in=ReceiptAccrual.objects.values("receipt_id")).exclude(
        id__in=ReceiptChallenge.objects.filter(status__in=["open", "voided"]).values("receipt_id")
    )
    if before is not None:
        pending = pending.filter(created_at__lte=before)
    return pending.select_related("version__ml_model__datanet", "version__ml_model__builder").order_by(
        "created_at", "id"
    )


def receipts_accrue(*, before: datetime | None = None) -> int:
    """Count every receipt not yet counted into the open epoch. Safe to run any number of times, concurrently."""
    with transaction.atomic():
        epoch = Epoch.objects.select_for_update().filter(status=Epoch.Status.OPEN).first()
        if epoch is None:
            epoch = epoch_open_get()
            epoch = Epoch.objects.select_for_update().get(pk=epoch.pk)
        return accrue_into(epoch, pending_receipts(before=before).iterator(chunk_size=2000))


# ---- pools ---------------------------------------------------------------------------------------------------


def pool_fund(*, actor: User, datanet: Datanet, amount_credits: int, epoch_number: int | None = None) -> EpochPool:
    """The Datanet's owner puts credits into the open epoch's pool for that Datanet (debited from their balance).

    ``epoch_number``, when given, must be the open epoch: a page or API call made against an epoch that has since
    closed fails instead of silently funding the next one."""
    if actor.pk != datanet.owner_id:
        raise Forbidden("Only the owner of this Datanet can fund its epoch pool.")
    if isinstance(amount_credits, bool) or not isinstance(amount_credits, int) or amount_credits <= 0:
        raise UserError("Fund the pool with a positive whole number of credits.")
    with transaction.atomic():
        epoch = Epoch.objects.select_for_update().get(pk=epoch_open_get().pk)
        if epoch_number is not None and epoch_number != epoch.number:
            if not Epoch.objects.filter(number=epoch_number).exists():
                raise NotFound(f"There is no epoch {epoch_number}.")
            raise Conflict(
                f"Epoch {epoch_number} is not open, so its pool is final; fund the open epoch {epoch.number} instead."
            )
        try:
            account = credits_debit(user=actor, amount=amount_credits, reason=f"epoch {epoch.number} pool")
        except InsufficientCredit as exc:
            raise UserError(
                f"Funding {amount_credits} credits needs that much credit; your balance is {exc.balance}.",
                extra={"balance": exc.balance},
            ) from None
        pool = EpochPool.objects.create(
            epoch=epoch, datanet=datanet, amount=amount_credits * token_units_per_credit(), funded_by=actor
        )
        audit_record(
            actor=actor,
            action="rewards.pool_fund",
            target=pool,
            before={"balance": account.balance + amount_credits},
            after={
                "epoch": epoch.number,
                "datanet": datanet.slug,
                "credits": amount_credits,
                "amount": str(pool.amount),
                "balance": account.balance,
            },
        )
    return pool
