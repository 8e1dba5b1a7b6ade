"""Reward accounting: how fees and pools split into ledger entries, epochs open and close, totals add up.

The splitting functions at the top are pure integer arithmetic (property-tested); the services below them write
the ledger. Every unit that enters an epoch (receipt fees, pools) leaves it in exactly one ledger entry; rounding
remainders go to the platform.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import User
from core.errors import Conflict, Forbidden, NotFound, UserError
from datanets.models import ContributorStanding, Datanet, Record, Vote
from datanets.services import contributor_standing_set
from settlement.models import (
    BPS,
    AccountTotal,
    Allocation,
    Epoch,
    EpochPool,
    LedgerEntry,
    Penalty,
    ReceiptAccrual,
    RewardPolicy,
)
from settlement.onchain import token_units_per_credit

PPM = 1_000_000
# Valuations are floats; weights are their integer micro-units so splits stay exact and reproducible.
VALUE_SCALE = 10**12

Kind = LedgerEntry.Kind


# ---- pure arithmetic -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bps:
    platform: int = 1_000
    builder: int = 2_000
    curators: int = 1_000
    contributors: int = 6_000

    @classmethod
    def of(cls, policy: RewardPolicy | None) -> Bps:
        if policy is None:
            return cls()
        return cls(policy.platform_bps, policy.builder_bps, policy.curators_bps, policy.contributors_bps)


@dataclass
class FeeSplit:
    platform: int
    builder: int
    curators: int
    contributors: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.platform + self.builder + self.curators + sum(self.contributors.values())


def split_fee(fee: int, bps: Bps, shares: Iterable[Mapping[str, Any]]) -> FeeSplit:
    """Split ``fee`` base units: builder, curators and each contributor round down, the platform takes the rest."""
    if fee < 0:
        raise ValueError("a fee cannot be negative")
    if bps.platform + bps.builder + bps.curators + bps.contributors != BPS:
        raise ValueError("basis points must sum to 10,000")
    builder = fee * bps.builder // BPS
    curators = fee * bps.curators // BPS
    contributors_part = fee * bps.contributors // BPS
    paid: dict[str, int] = defaultdict(int)
    shares = list(shares)
    if sum(int(s["share_ppm"]) for s in shares) not in (0, PPM):
        raise ValueError("receipt shares must sum to 1,000,000 ppm")
    for share in shares:
        amount = contributors_part * int(share["share_ppm"]) // PPM
        if amount:
            paid[str(share["contributor"])] += amount
    platform = fee - builder - curators - sum(paid.values())
    return FeeSplit(platform=platform, builder=builder, curators=curators, contributors=dict(paid))


def split_pro_rata(amount: int, weights: Mapping[Any, int]) -> tuple[dict[Any, int], int]:
    """``amount`` split by positive integer weights, rounded down; returns (shares, remainder)."""
    positive = {k: int(w) for k, w in weights.items() if int(w) > 0}
    total = sum(positive.values())
    if amount <= 0 or total == 0:
        return {}, max(amount, 0)
    shares = {k: amount * w // total for k, w in positive.items()}
    shares = {k: v for k, v in shares.items() if v}
    return shares, amount - sum(shares.values())


# ---- policies and epochs -------------------------------------------------------------------------------------


def policy_for(datanet: Datanet) -> RewardPolicy:
    policy = RewardPolicy.objects.filter(datanet=datanet).first()
    return policy or RewardPolicy(datanet=datanet)


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
        from django.core.exceptions import ValidationError

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


def _receipt_datanet_and_builder(receipt: Any) -> tuple[Datanet, User]:
    ml_model = receipt.version.ml_model
    return ml_model.datanet, ml_model.builder


def _accrue_into(epoch: Epoch, receipts: Iterable[Any]) -> int:
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
    usernames = {str(s["contributor"]) for r in fresh for s in (r.body.get("shares") or [])}
    users = dict(User.objects.filter(username__in=usernames).values_list("username", "pk"))
    policies: dict[int, Bps] = {}
    accruals, entries = [], []
    for receipt in fresh:
        datanet, builder = _receipt_datanet_and_builder(receipt)
        if datanet.pk not in policies:
            policies[datanet.pk] = Bps.of(RewardPolicy.objects.filter(datanet=datanet).first())
        fee = int(receipt.fee) * units
        shares = [s for s in (receipt.body.get("shares") or []) if str(s["contributor"]) in users]
        if len(shares) != len(receipt.body.get("shares") or []):
            shares = []  # a contributor that no longer exists: the contributors' part goes to the platform
        split = split_fee(fee, policies[datanet.pk], shares)
        accruals.append(
            ReceiptAccrual(
                receipt_id=receipt.id,
                epoch=epoch,
                datanet=datanet,
                fee=fee,
                curators_part=split.curators,
                receipt_created_at=receipt.created_at,
            )
        )
        common = {"epoch": epoch, "datanet": datanet, "receipt_id": receipt.id}
        for username, amount in sorted(split.contributors.items()):
            entries.append(LedgerEntry(account_id=users[username], kind=Kind.CONTRIBUTOR, amount=amount, **common))
        if split.builder:
            entries.append(LedgerEntry(account=builder, kind=Kind.BUILDER, amount=split.builder, **common))
        memo = "" if receipt.body.get("shares") else "receipt has no contributor shares"
        entries.append(LedgerEntry(account=None, kind=Kind.PLATFORM, amount=split.platform, memo=memo, **common))
    ReceiptAccrual.objects.bulk_create(accruals, batch_size=2000)
    LedgerEntry.objects.bulk_create(entries, batch_size=2000)
    return len(fresh)


def receipts_accrue(*, before: datetime | None = None) -> int:
    """Count every receipt not yet counted into the open epoch. Safe to run any number of times, concurrently."""
    from attribution.models import Receipt

    with transaction.atomic():
        epoch = Epoch.objects.select_for_update().filter(status=Epoch.Status.OPEN).first()
        if epoch is None:
            epoch = epoch_open_get()
            epoch = Epoch.objects.select_for_update().get(pk=epoch.pk)
        pending = Receipt.objects.exclude(id__in=ReceiptAccrual.objects.values("receipt_id"))
        if before is not None:
            pending = pending.filter(created_at__lte=before)
        pending = pending.select_related("version__ml_model__datanet", "version__ml_model__builder").order_by(
            "created_at", "id"
        )
        return _accrue_into(epoch, pending.iterator(chunk_size=2000))


def pool_fund(*, actor: User, datanet: Datanet, amount_credits: int, epoch_number: int | None = None) -> EpochPool:
    """The Datanet's owner puts credits into the open epoch's pool for that Datanet (debited from their balance).

    ``epoch_number``, when given, must be the open epoch: a page or API call made against an epoch that has since
    closed fails instead of silently funding the next one."""
    from models_factory.models import CreditAccount

    if actor.pk != datanet.owner_id:
        raise Forbidden(f"Only the owner of {datanet.title} can fund its epoch pool.")
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
        account = CreditAccount.objects.select_for_update().filter(user=actor).first()
        balance = account.balance if account else 0
        if account is None or balance < amount_credits:
            raise UserError(
                f"Funding {amount_credits} credits needs that much credit; your balance is {balance}.",
                extra={"balance": balance},
            )
        account.balance -= amount_credits
        account.save(update_fields=["balance", "updated_at"])
        pool = EpochPool.objects.create(
            epoch=epoch, datanet=datanet, amount=amount_credits * token_units_per_credit(), funded_by=actor
        )
        audit_record(
            actor=actor,
            action="rewards.pool_fund",
            target=pool,
            before={"balance": balance},
            after={
                "epoch": epoch.number,
                "datanet": datanet.slug,
                "credits": amount_credits,
                "amount": str(pool.amount),
                "balance": account.balance,
            },
        )
    return pool


# ---- closing: curators, pools, penalties, allocations --------------------------------------------------------


def _curator_weights(datanet_id: int, start: datetime, end: datetime) -> dict[int, int]:
    """Votes cast in the epoch that matched the record's outcome, per curator."""
    matched = Vote.objects.filter(record__datanet_id=datanet_id, created_at__gte=start, created_at__lt=end).filter(
        Q(decision=Vote.Decision.APPROVE, record__status=Record.Status.APPROVED)
        | Q(decision=Vote.Decision.REJECT, record__status=Record.Status.REJECTED)
    )
    weights: dict[int, int] = defaultdict(int)
    for curator_id in matched.values_list("curator_id", flat=True):
        weights[curator_id] += 1
    return dict(weights)


def _split_curator_parts(epoch: Epoch) -> list[LedgerEntry]:
    pots: dict[int, int] = defaultdict(int)
    for datanet_id, part in ReceiptAccrual.objects.filter(epoch=epoch).values_list("datanet_id", "curators_part"):
        pots[datanet_id] += int(part)
    entries = []
    assert epoch.closed_at is not None
    for datanet_id, pot in sorted(pots.items()):
        if not pot:
            continue
        shares, remainder = split_pro_rata(pot, _curator_weights(datanet_id, epoch.opened_at, epoch.closed_at))
        for curator_id, amount in sorted(shares.items()):
            entries.append(
                LedgerEntry(epoch=epoch, account_id=curator_id, kind=Kind.CURATOR, amount=amount, datanet_id=datanet_id)
            )
        if remainder:
            memo = "rounding" if shares else "no curator vote in this epoch matched an outcome"
            entries.append(
                LedgerEntry(epoch=epoch, kind=Kind.PLATFORM, amount=remainder, datanet_id=datanet_id, memo=memo)
            )
    return entries


def latest_valued_version(datanet: Datanet) -> Any:
    from attribution.models import RecordValuation
    from models_factory.models import ModelVersion

    version_ids = RecordValuation.objects.filter(version__ml_model__datanet=datanet).values("version_id")
    return ModelVersion.objects.filter(pk__in=version_ids).order_by("-created_at", "-pk").first()


def penalty_points(*, account: User, datanet: Datanet) -> int:
    """Penalty points of one contributor in one Datanet (the datanets app may ask for more approvals above the
    policy's threshold)."""
    return sum(Penalty.objects.filter(account=account, datanet=datanet).values_list("points", flat=True))


def standings_refresh(datanet: Datanet, account_ids: Iterable[int] | None = None) -> None:
    """Write each contributor's penalty points and extra approvals into their standing in the Datanet: one more
    approval once their points are over the policy's threshold (DESIGN.md, Rewards)."""
    threshold = policy_for(datanet).penalty_threshold
    points: dict[int, int] = defaultdict(int)
    for account_id, p in Penalty.objects.filter(datanet=datanet).values_list("account_id", "points"):
        points[account_id] += p
    known = set(ContributorStanding.objects.filter(datanet=datanet).values_list("user_id", flat=True))
    wanted = set(points) | known if account_ids is None else set(account_ids)
    for account_id in sorted(wanted):
        over = points[account_id] > threshold
        reason = (
            f"{points[account_id]} penalty points in this Datanet, over its threshold of {threshold}: uploads need one "
            "more approval"
            if over
            else ""
        )
        contributor_standing_set(
            user_id=account_id,
            datanet=datanet,
            penalty_points=points[account_id],
            extra_approvals=1 if over else 0,
            reason=reason,
        )


def _assess_penalties(epoch: Epoch, datanet: Datanet, version: Any) -> None:
    from attribution.models import RecordValuation

    negative = RecordValuation.objects.filter(version=version, knn_shapley__lt=0).select_related("record")
    known = set(Penalty.objects.filter(version=version).values_list("record_id", flat=True))
    Penalty.objects.bulk_create(
        [
            Penalty(
                account_id=v.record.contributor_id,
                datanet=datanet,
                record=v.record,
                version=version,
                epoch=epoch,
                points=1,
                value=v.knn_shapley,
                reason=(
                    f"Record #{v.record_id} has a negative KNN-Shapley value ({v.knn_shapley:.4g}) for "
                    f"{version}: it made the model worse on the validation split (likely mislabeled or harmful)."
                ),
            )
            for v in negative
            if v.record_id not in known
        ],
        ignore_conflicts=True,
    )
    standings_refresh(datanet)


def _assess_all_penalties(epoch: Epoch) -> None:
    from attribution.models import RecordValuation

    datanet_ids = set(RecordValuation.objects.values_list("version__ml_model__datanet_id", flat=True).distinct())
    for datanet in Datanet.objects.filter(pk__in=datanet_ids).order_by("pk"):
        version = latest_valued_version(datanet)
        if version is not None:
            _assess_penalties(epoch, datanet, version)


def _split_pools(epoch: Epoch) -> tuple[list[LedgerEntry], dict[int, int]]:
    """Pool entries, and what each Datanet carries over to the next epoch (withheld or unallocated)."""
    from attribution.models import RecordValuation

    entries: list[LedgerEntry] = []
    carry: dict[int, int] = defaultdict(int)
    by_datanet: dict[int, list[EpochPool]] = defaultdict(list)
    for pool in EpochPool.objects.filter(epoch=epoch).select_related("datanet"):
        by_datanet[pool.datanet_id].append(pool)
    for datanet_id, pools in sorted(by_datanet.items()):
        datanet = pools[0].datanet
        policy = policy_for(datanet)
        version = latest_valued_version(datanet)
        weights: dict[int, int] = defaultdict(int)
        if version is not None:
            values = RecordValuation.objects.filter(version=version, knn_shapley__gt=0, record__datanet=datanet)
            for contributor_id, value in values.values_list("record__contributor_id", "knn_shapley"):
                weights[contributor_id] += int(value * VALUE_SCALE)
        points: dict[int, int] = defaultdict(int)
        for account_id, p in Penalty.objects.filter(datanet=datanet).values_list("account_id", "points"):
            points[account_id] += p
        for pool in pools:
            shares, remainder = split_pro_rata(int(pool.amount), weights)
            common = {"epoch": epoch, "datanet": datanet, "pool": pool}
            for account_id, amount in sorted(shares.items()):
                if points[account_id] > policy.penalty_threshold:
                    memo = (
                        f"{points[account_id]} penalty points (threshold {policy.penalty_threshold}): this epoch's "
                        "pool share is withheld and carried over to the next epoch's pool"
                    )
                    entries.append(
                        LedgerEntry(account_id=account_id, kind=Kind.WITHHELD, amount=amount, memo=memo, **common)
                    )
                    carry[datanet_id] += amount
                else:
                    entries.append(LedgerEntry(account_id=account_id, kind=Kind.POOL, amount=amount, **common))
            if remainder and shares:
                entries.append(LedgerEntry(kind=Kind.PLATFORM, amount=remainder, memo="pool rounding", **common))
            elif remainder:
                memo = "no record of this Datanet has a positive valuation yet: carried over to the next epoch"
                entries.append(LedgerEntry(kind=Kind.CARRY, amount=remainder, memo=memo, **common))
                carry[datanet_id] += remainder
    return entries, dict(carry)


def _materialize(epoch: Epoch) -> None:
    """Allocation rows per account and the cumulative totals, from the epoch's ledger."""
    per_account: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    totals = {"fees": 0, "platform": 0, "carried": 0}
    for account_id, kind, amount in LedgerEntry.objects.filter(epoch=epoch).values_list("account_id", "kind", "amount"):
        amount = int(amount)
        if kind in LedgerEntry.PAYABLE:
            per_account[account_id][kind] += amount
        elif kind == Kind.PLATFORM:
            totals["platform"] += amount
        else:
            totals["carried"] += amount
    existing = {t.account_id: t for t in AccountTotal.objects.select_for_update().filter(account_id__in=per_account)}
    allocations, new_totals, changed = [], [], []
    for account_id, parts in sorted(per_account.items()):
        amount = sum(parts.values())
        total = existing.get(account_id)
        if total is None:
            total = AccountTotal(account_id=account_id, cumulative=0)
            new_totals.append(total)
        else:
            changed.append(total)
        total.cumulative = int(total.cumulative) + amount
        total.through_epoch = epoch.number
        allocations.append(
            Allocation(
                epoch=epoch, account_id=account_id, amount=amount, cumulative=total.cumulative, breakdown=dict(parts)
            )
        )
    Allocation.objects.bulk_create(allocations, batch_size=2000)
    AccountTotal.objects.bulk_create(new_totals, batch_size=2000)
    AccountTotal.objects.bulk_update(changed, ["cumulative", "through_epoch"], batch_size=2000)
    epoch.fees_in = sum(int(f) for f in ReceiptAccrual.objects.filter(epoch=epoch).values_list("fee", flat=True))
    epoch.pools_in = sum(int(a) for a in EpochPool.objects.filter(epoch=epoch).values_list("amount", flat=True))
    epoch.platform_amount = totals["platform"]
    epoch.carried_over = totals["carried"]


def receipts_root(receipt_ids: list[str]) -> str:
    """The Merkle root (StandardMerkleTree of bytes32) of an epoch's receipt ids; empty when there are none."""
    from settlement.merkle import StandardMerkleTree

    if not receipt_ids:
        return ""
    return StandardMerkleTree.of([(bytes.fromhex(r),) for r in sorted(receipt_ids)], ["bytes32"]).root


def epoch_close(*, actor: User | None, number: int) -> Epoch:
    """Close the open epoch: count its last receipts, split curator parts and pools, write allocations and
    cumulative totals, and open the next epoch. No receipt enters a closed epoch."""
    if actor is not None and not actor.is_staff:
        raise Forbidden("Only an admin can close an epoch.")
    with transaction.atomic():
        epoch = Epoch.objects.select_for_update().filter(number=number).first()
        if epoch is None:
            raise NotFound(f"There is no epoch {number}.")
        if epoch.status != Epoch.Status.OPEN:
            raise Conflict(f"Epoch {number} is already {epoch.get_status_display().lower()}.")
        now = timezone.now()
        from attribution.models import Receipt

        pending = (
            Receipt.objects.exclude(id__in=ReceiptAccrual.objects.values("receipt_id"))
            .filter(created_at__lte=now)
            .select_related("version__ml_model__datanet", "version__ml_model__builder")
            .order_by("created_at", "id")
        )
        _accrue_into(epoch, pending.iterator(chunk_size=2000))
        epoch.status = Epoch.Status.CLOSED
        epoch.closed_at = now
        epoch.closed_by = actor
        epoch.save(update_fields=["status", "closed_at", "closed_by"])
        following = Epoch.objects.create(number=epoch.number + 1, opened_at=now)
        _assess_all_penalties(epoch)
        entries = _split_curator_parts(epoch)
        pool_entries, carry = _split_pools(epoch)
        LedgerEntry.objects.bulk_create(entries + pool_entries, batch_size=2000)
        for datanet_id, amount in sorted(carry.items()):
            EpochPool.objects.create(epoch=following, datanet_id=datanet_id, amount=amount, carried_from=epoch)
        _materialize(epoch)
        ids = list(ReceiptAccrual.objects.filter(epoch=epoch).values_list("receipt_id", flat=True))
        epoch.receipt_count = len(ids)
        epoch.receipts_root = receipts_root(ids)
        epoch.save()
        audit_record(
            actor=actor,
            action="rewards.epoch_close",
            target=epoch,
            after={
                "receipts": epoch.receipt_count,
                "fees_in": str(epoch.fees_in),
                "pools_in": str(epoch.pools_in),
                "platform": str(epoch.platform_amount),
                "carried_over": str(epoch.carried_over),
            },
        )
    return epoch
