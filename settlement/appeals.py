"""Penalties as appealable decisions (``datanets.appeals``), and what an overturned flag or penalty changes here.

An overturned penalty stops counting (a ``PenaltyOverturn``; the row stays for the history and is never assessed
again); the contributor's standing is refreshed; and if that brings their points back to the threshold or below,
the pool shares withheld from them in this Datanet are owed back (``WithheldRelease``) and paid from its pool at
the next epoch close. An overturned confirmed flag does the same for the penalties of its record.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Sum

from accounts.audit import audit_record
from accounts.models import User
from attribution.models import Flag
from datanets import appeals
from datanets.models import Appeal, Datanet
from settlement.models import LedgerEntry, Penalty, PenaltyOverturn, WithheldRelease
from settlement.penalties import points_by_account, standings_refresh
from settlement.selectors import policy_for


def _penalty_target(object_id: str) -> appeals.AppealTarget | None:
    if not object_id.isdigit():
        return None
    penalty = (
        Penalty.objects.select_related("datanet", "record").filter(pk=int(object_id), overturn__isnull=True).first()
    )
    if penalty is None:
        return None
    confirmed_by = Flag.objects.filter(
        record_id=penalty.record_id, status=Flag.Status.CONFIRMED, resolved_by__isnull=False
    ).values_list("resolved_by_id", flat=True)
    return appeals.AppealTarget(
        datanet=penalty.datanet,
        party_id=penalty.account_id,
        decided_by=sorted(set(confirmed_by)),
        summary=f"Penalty of {penalty.points} point(s) for record #{penalty.record_id}: {penalty.reason}",
        url=penalty.record.get_absolute_url(),
        record_id=penalty.record_id,
    )


def _release_withheld(account_id: int, datanet: Datanet, appeal: Appeal) -> int:
    """Owe back what was withheld from the account in this Datanet, once its points are no longer over the
    threshold; returns the amount (0 when still over, or nothing is owed)."""
    if points_by_account(datanet)[account_id] > policy_for(datanet).penalty_threshold:
        return 0
    withheld = LedgerEntry.objects.filter(account_id=account_id, datanet=datanet, kind=LedgerEntry.Kind.WITHHELD)
    owed = int(withheld.aggregate(s=Sum("amount"))["s"] or 0)
    released = WithheldRelease.objects.filter(account_id=account_id, datanet=datanet)
    owed -= int(released.aggregate(s=Sum("amount"))["s"] or 0)
    if owed <= 0:
        return 0
    release = WithheldRelease.objects.create(account_id=account_id, datanet=datanet, amount=owed, appeal=appeal)
    audit_record(
        actor=None, action="rewards.withheld_release", target=release, after={"amount": str(owed), "appeal": appeal.pk}
    )
    return owed


def _overturn_penalties(penalties: list[Penalty], appeal: Appeal, actor: User | None) -> dict[str, Any]:
    if not penalties:
        return {"penalties": [], "released": "0"}
    for penalty in penalties:
        PenaltyOverturn.objects.get_or_create(penalty=penalty, defaults={"appeal": appeal})
        audit_record(
            actor=actor, action="rewards.penalty_overturn", target=penalty, after={"appeal": appeal.pk, "points": 0}
        )
    datanet = penalties[0].datanet
    account_id = penalties[0].account_id
    standings_refresh(datanet, [account_id])
    released = _release_withheld(account_id, datanet, appeal)
    return {"penalties": [p.pk for p in penalties], "released": str(released)}


def _penalty_overturn(appeal: Appeal, actor: User | None) -> dict[str, Any]:
    penalty = Penalty.objects.select_for_update().select_related("datanet").get(pk=int(appeal.object_id))
    return _overturn_penalties([penalty], appeal, actor)


def _flag_overturned(appeal: Appeal, actor: User | None) -> None:
    """The record's penalties go with the flag that confirmed it harmful."""
    flag = Flag.objects.get(pk=int(appeal.object_id))
    penalties = list(
        Penalty.objects.select_for_update(of=("self",))  # PostgreSQL locks no outer-joined side
        .select_related("datanet")
        .filter(record_id=flag.record_id, overturn__isnull=True)
        .order_by("pk")
    )
    _overturn_penalties(penalties, appeal, actor)


def register_penalty_kind() -> None:
    appeals.register(
        "penalty",
        label="Penalty",
        target=_penalty_target,
        overturn=_penalty_overturn,
        refusal="There is no standing penalty with that id; a penalty already removed cannot be appealed again.",
    )
    appeals.on_overturned("flag", _flag_overturned)
