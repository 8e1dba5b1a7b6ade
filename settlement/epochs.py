"""Closing an epoch: its last receipts, the curators' parts, the pools, penalties, and the allocations and
cumulative totals that settlement anchors. No receipt enters a closed epoch.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import User
from attribution.models import RecordValuation
from attribution.selectors import valuing_version
from core.errors import Conflict, Forbidden, NotFound
from datanets.models import Datanet, Record, Vote
from datanets.selectors import curator_standings
from settlement.merkle import StandardMerkleTree
from settlement.models import AccountTotal, Allocation, Epoch, EpochPool, LedgerEntry, ReceiptAccrual, WithheldRelease
from settlement.penalties import penalties_assess, points_by_account
from settlement.rewards import accrue_into, pending_receipts
from settlement.selectors import policy_for
from settlement.splits import split_pro_rata

# Valuations and standings are floats; weights are their integer micro-units so splits stay exact and reproducible.
VALUE_SCALE = 10**12
STANDING_SCALE = 10**6

Kind = LedgerEntry.Kind


def _curator_weights(datanet_id: int, start: datetime, end: datetime) -> dict[int, int]:
    """Per curator: their standing (chance-corrected agreement with outcomes and appeals) times the square root of
    their votes cast in the epoch that matched the outcome. Volume alone earns little: approving everything has
    a standing near 0, and the square root makes ten times the votes worth about three times as much."""
    matched = Vote.objects.filter(record__datanet_id=datanet_id, created_at__gte=start, created_at__lt=end).filter(
        Q(decision=Vote.Decision.APPROVE, record__status=Record.Status.APPROVED)
        | Q(decision=Vote.Decision.REJECT, record__status=Record.Status.REJECTED)
    )
    counts: dict[int, int] = defaultdict(int)
    for curator_id in matched.values_list("curator_id", flat=True):
        counts[curator_id] += 1
    if not counts:
        return {}
    standings = curator_standings(Datanet.objects.get(pk=datanet_id), include_former=True)
    weights = {}
    for curator_id, n in counts.items():
        standing = standings[curator_id].standing if curator_id in standings else 0.0
        weight = int(standing * math.sqrt(n) * STANDING_SCALE)
        if weight > 0:
            weights[curator_id] = weight
    return weights


def _split_curator_parts(epoch: Epoch) -> list[LedgerEntry]:
    pots: dict[int, int] = defaultdict(int)
    for datanet_id, part in ReceiptAccrual.objects.filter(epoch=epoch).values_list("datanet_id", "curators_part"):
        pots[datanet_id] += int(part)
    entries = []
    assert epoch.closed_at is not None
    for datanet_id, pot in sorted(pots.items()):
        if not pot:
            continue
        amounts, remainder = split_pro_rata(pot, _curator_weights(datanet_id, epoch.opened_at, epoch.closed_at))
        for curator_id, amount_units in sorted(amounts.items()):
            entries.append(
                LedgerEntry(
                    epoch=epoch, account_id=curator_id, kind=Kind.CURATOR, amount=amount_units, datanet_id=datanet_id
                )
            )
        if remainder:
            memo = (
                "rounding" if amounts else "no curator with standing cast a vote in this epoch that matched an outcome"
            )
            entries.append(
                LedgerEntry(epoch=epoch, kind=Kind.PLATFORM, amount=remainder, datanet_id=datanet_id, memo=memo)
            )
    return entries


def _valuing_record(datanet: Datanet, penalties: int) -> dict[str, object]:
    """What the epoch publishes about who valued a Datanet (``Epoch.valuing_versions``)."""
    version, rule = valuing_version(datanet)
    return {
        "datanet": datanet.slug,
        "version": version.pk if version else None,
        "model": version.ml_model.slug if version else None,
        "model_version": version.version if version else None,
        "builder": version.ml_model.builder.username if version else None,
        "rule": rule,
        "penalties": penalties,
    }


def _split_pools(epoch: Epoch) -> tuple[list[LedgerEntry], dict[int, int]]:
    """Pool entries, and what each Datanet carries over to the next epoch (withheld or unallocated). Only the
    Datanet's valuing version (``attribution.selectors.valuing_version``) splits its pool."""
    entries: list[LedgerEntry] = []
    carry: dict[int, int] = defaultdict(int)
    by_datanet: dict[int, list[EpochPool]] = defaultdict(list)
    for pool in EpochPool.objects.filter(epoch=epoch).select_related("datanet"):
        by_datanet[pool.datanet_id].append(pool)
    for datanet_id, pools in sorted(by_datanet.items()):
        datanet = pools[0].datanet
        policy = policy_for(datanet)
        version, _ = valuing_version(datanet)
        weights: dict[int, int] = defaultdict(int)
        if version is not None:
            # Only records still approved: one that curators rejected since (a confirmed flag) stops drawing pool
            # share, even while the valuing version's snapshot still holds it.
            values = RecordValuation.objects.filter(
                version=version, knn_shapley__gt=0, record__datanet=datanet, record__status=Record.Status.APPROVED
            )
            for contributor_id, value in values.values_list("record__contributor_id", "knn_shapley"):
                weights[contributor_id] += int(value * VALUE_SCALE)
        points = points_by_account(datanet)
        available = {pool.pk: int(pool.amount) for pool in pools}
        entries += _release_withheld_from(epoch, datanet, pools, available)
        for pool in pools:
            amounts, remainder = split_pro_rata(available[pool.pk], weights)
            common = {"epoch": epoch, "datanet": datanet, "pool": pool}
            for account_id, amount_units in sorted(amounts.items()):
                if points[account_id] > policy.penalty_threshold:
                    memo = (
                        f"{points[account_id]} penalty points (threshold {policy.penalty_threshold}): this epoch's "
                        "pool share is withheld and carried over to the next epoch's pool"
                    )
                    entries.append(
                        LedgerEntry(account_id=account_id, kind=Kind.WITHHELD, amount=amount_units, memo=memo, **common)
                    )
                    carry[datanet_id] += amount_units
                else:
                    entries.append(LedgerEntry(account_id=account_id, kind=Kind.POOL, amount=amount_units, **common))
            if remainder and amounts:
                entries.append(LedgerEntry(kind=Kind.PLATFORM, amount=remainder, memo="pool rounding", **common))
            elif remainder:
                memo = (
                    "no record of this Datanet has a positive valuation by its valuing version yet: carried over to "
                    "the next epoch"
                )
                entries.append(LedgerEntry(kind=Kind.CARRY, amount=remainder, memo=memo, **common))
                carry[datanet_id] += remainder
    return entries, dict(carry)


def _release_withheld_from(
    epoch: Epoch, datanet: Datanet, pools: list[EpochPool], available: dict[int, int]
) -> list[LedgerEntry]:
    """Pay withheld shares owed back after appeals (``WithheldRelease``) from this epoch's pools, before the rest
    is split; one that the pools cannot cover in full waits for the next epoch."""
    entries = []
    for release in WithheldRelease.objects.select_for_update().filter(datanet=datanet, released_in__isnull=True):
        owed = int(release.amount)
        if owed > sum(available.values()):
            continue
        for pool in pools:
            take = min(owed, available[pool.pk])
            if take:
                available[pool.pk] -= take
                owed -= take
                memo = f"withheld pool share released: appeal #{release.appeal_id} removed the penalty"
                entries.append(
                    LedgerEntry(
                        epoch=epoch,
                        datanet=datanet,
                        pool=pool,
                        account_id=release.account_id,
                        kind=Kind.POOL,
                        amount=take,
                        memo=memo,
                    )
                )
        release.released_in = epoch
        release.save(update_fields=["released_in"])
    return entries


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
        accrue_into(epoch, pending_receipts(before=now).iterator(chunk_size=2000))
        epoch.status = Epoch.Status.CLOSED
        epoch.closed_at = now
        epoch.closed_by = actor
        epoch.save(update_fields=["status", "closed_at", "closed_by"])
        following = Epoch.objects.create(number=epoch.number + 1, opened_at=now)
        penalized = penalties_assess(epoch)
        entries = _split_curator_parts(epoch)
        pool_entries, carry = _split_pools(epoch)
        abstained = LedgerEntry.objects.filter(epoch=epoch, kind=Kind.CARRY).exclude(receipt_id="")
        for datanet_id, amount in abstained.values_list("datanet_id", "amount"):
            carry[datanet_id] = carry.get(datanet_id, 0) + int(amount)
        LedgerEntry.objects.bulk_create(entries + pool_entries, batch_size=2000)
        for datanet_id, amount in sorted(carry.items()):
            EpochPool.objects.create(epoch=following, datanet_id=datanet_id, amount=amount, carried_from=epoch)
        _materialize(epoch)
        ids = list(ReceiptAccrual.objects.filter(epoch=epoch).values_list("receipt_id", flat=True))
        epoch.receipt_count = len(ids)
        epoch.receipts_root = receipts_root(ids)
        valued = set(penalized) | set(EpochPool.objects.filter(epoch=epoch).values_list("datanet_id", flat=True))
        epoch.valuing_versions = [
            _valuing_record(datanet, penalized.get(datanet.pk, 0))
            for datanet in Datanet.objects.filter(pk__in=valued).order_by("slug")
        ]
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
                "valuing_versions": epoch.valuing_versions,
            },
        )
    return epoch
