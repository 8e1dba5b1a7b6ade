"""Reads for the rewards pages and API."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from accounts.models import User
from datanets.models import Appeal, ContributorStanding, Datanet
from settlement.chain.config import token_units_per_credit
from settlement.models import (
    Allocation,
    Epoch,
    EpochPool,
    LedgerEntry,
    PayoutAddress,
    Penalty,
    RewardPolicy,
    Settlement,
)


def policy_for(datanet: Datanet) -> RewardPolicy:
    """The Datanet's fee policy; the defaults (unsaved) when its owner never set one."""
    policy = RewardPolicy.objects.filter(datanet=datanet).first()
    return policy or RewardPolicy(datanet=datanet)


def tokens(amount: int | str) -> str:
    """Base units as a decimal token figure (18 decimals), trimmed."""
    value = Decimal(int(amount)) / Decimal(10**18)
    text = f"{value:,.6f}".rstrip("0").rstrip(".")
    return text or "0"


def earnings_for(*, user: User, limit: int = 200) -> dict[str, Any]:
    allocations = list(Allocation.objects.filter(account=user).select_related("epoch").order_by("epoch__number"))
    by_datanet: dict[str, int] = defaultdict(int)
    open_amount = 0
    for title, kind, amount, status in LedgerEntry.objects.filter(account=user).values_list(
        "datanet__title", "kind", "amount", "epoch__status"
    ):
        if kind in LedgerEntry.PAYABLE:
            by_datanet[title or "-"] += int(amount)
            if status == Epoch.Status.OPEN:
                open_amount += int(amount)
    entries = list(LedgerEntry.objects.filter(account=user).select_related("epoch", "datanet").order_by("-id")[:limit])
    return {
        "per_epoch": [
            {
                "epoch": a.epoch.number,
                "amount": int(a.amount),
                "cumulative": int(a.cumulative),
                "breakdown": a.breakdown,
            }
            for a in allocations
        ],
        "per_datanet": sorted(({"datanet": k, "amount": v} for k, v in by_datanet.items()), key=lambda r: -r["amount"]),
        "open_epoch_amount": open_amount,
        "cumulative": int(allocations[-1].cumulative) if allocations else 0,
        "entries": entries,
        "penalties": _with_appeals(
            list(Penalty.objects.filter(account=user).select_related("datanet", "epoch", "overturn")[:limit])
        ),
        "standings": list(
            ContributorStanding.objects.filter(user=user, penalty_points__gt=0).select_related("datanet")
        ),
        "withheld": [e for e in entries if e.kind == LedgerEntry.Kind.WITHHELD],
        "units_per_credit": token_units_per_credit(),
    }


def _with_appeals(penalties: list[Penalty]) -> list[Penalty]:
    """Each penalty with its appeal (``appeal``, or None), for the appeal button and status on the earnings page."""
    appeals = Appeal.objects.filter(kind="penalty", object_id__in=[str(p.pk) for p in penalties])
    by_id = {a.object_id: a for a in appeals.select_related("datanet")}
    for penalty in penalties:
        penalty.appeal = by_id.get(str(penalty.pk))  # type: ignore[attr-defined]
    return penalties


def epochs_with_settlements() -> list[Epoch]:
    return list(Epoch.objects.select_related("settlement").order_by("-number"))


def settlement_of(epoch: Epoch) -> Settlement | None:
    return Settlement.objects.filter(epoch=epoch).first()


def pools_of(datanet: Datanet) -> list[EpochPool]:
    """Every pool of a Datanet, newest epoch first (funded ones and those carried over)."""
    return list(
        EpochPool.objects.filter(datanet=datanet)
        .select_related("epoch", "funded_by", "carried_from")
        .order_by("-epoch__number", "-id")
    )


def owned_datanets(user: User) -> list[Datanet]:
    return list(Datanet.objects.filter(owner=user).order_by("title")) if user.is_authenticated else []


def wallet_paid_to_another(user: Any, address: str) -> str | None:
    """An address published for one account is never linked to another: its leaf and claims belong to the first."""
    if PayoutAddress.objects.filter(address=address).exclude(account_id=user.pk).exists():
        return (
            f"{address} already received rewards for another account, so it cannot be linked to yours. "
            "Link an address that only you use."
        )
    return None
