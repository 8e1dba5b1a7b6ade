"""Penalties: points for records whose flag a curator confirmed, and each contributor's standing per Datanet.

A penalty never comes from raw valuation: only a flag raised by the Datanet's valuing version
(``attribution.valuation``) and confirmed by a curator adds a point, with the reason in words. Past a Datanet's
threshold a contributor's uploads need one more approval (written into the datanets-owned ``ContributorStanding``
through ``contributor_standing_set``) and their epoch pool share is withheld (``epochs``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from accounts.models import User
from attribution.models import Flag
from datanets.models import ContributorStanding, Datanet
from datanets.services import contributor_standing_set
from settlement.models import Epoch, Penalty
from settlement.selectors import policy_for

POINTS_PER_CONFIRMED_FLAG = 1


def penalty_points(*, account: User, datanet: Datanet) -> int:
    """Penalty points of one contributor in one Datanet (the datanets app may ask for more approvals above the
    policy's threshold)."""
    counted = Penalty.objects.filter(account=account, datanet=datanet, overturn__isnull=True)
    return sum(counted.values_list("points", flat=True))


def points_by_account(datanet: Datanet) -> defaultdict[int, int]:
    """Penalty points per account in a Datanet (0 for an account without any)."""
    points: dict[int, int] = defaultdict(int)
    counted = Penalty.objects.filter(datanet=datanet, overturn__isnull=True)  # an appeal removed the others
    for account_id, p in counted.values_list("account_id", "points"):
        points[account_id] += p
    return points


def standing_effect(points: int, threshold: int) -> str:
    """What a contributor's points do, in words (the standing's reason, shown on their Rewards page)."""
    if points <= threshold:
        return ""
    return (
        f"{points} penalty points in this Datanet, over its threshold of {threshold}: your next uploads need one more "
        f"approval and your epoch pool share is withheld, until your points are back at {threshold} or below "
        "(a flag overturned on appeal takes its point away)"
    )


def standings_refresh(datanet: Datanet, account_ids: Iterable[int] | None = None) -> None:
    """Write each contributor's penalty points and extra approvals into their standing in the Datanet: one more
    approval once their points are over the policy's threshold (DESIGN.md, Rewards)."""
    threshold = policy_for(datanet).penalty_threshold
    points = points_by_account(datanet)
    known = set(ContributorStanding.objects.filter(datanet=datanet).values_list("user_id", flat=True))
    wanted = set(points) | known if account_ids is None else set(account_ids)
    for account_id in sorted(wanted):
        over = points[account_id] > threshold
        contributor_standing_set(
            user_id=account_id,
            datanet=datanet,
            penalty_points=points[account_id],
            extra_approvals=1 if over else 0,
            reason=standing_effect(points[account_id], threshold),
        )


def penalty_reason(flag: Flag) -> str:
    """Why a confirmed flag cost a point, in words the contributor can check."""
    who = flag.resolved_by.username if flag.resolved_by else "a curator"
    when = f" on {flag.resolved_at:%Y-%m-%d}" if flag.resolved_at else ""
    cf = (flag.evidence or {}).get("cross_fit") or {}
    if flag.reason == Flag.Reason.LABEL and cf:
        what = (
            f"record #{flag.record_id}'s label '{flag.evidence.get('label')}' contradicts the rest of the data (a "
            f"model trained without it gives '{cf.get('suggested_label')}' {cf.get('suggested_probability', 0):.2f} "
            f"against {cf.get('own_label_probability', 0):.2f})"
        )
    else:
        what = f"record #{flag.record_id} harms the model ({flag.get_reason_display().lower()})"
    return f"Curator {who} confirmed{when} that {what}; the record is rejected. {POINTS_PER_CONFIRMED_FLAG} point."[
        :300
    ]


def penalties_assess(epoch: Epoch) -> dict[int, int]:
    """A penalty point for every confirmed flag not yet penalized; returns how many each Datanet got."""
    penalized = Penalty.objects.filter(flag__isnull=False).values("flag_id")
    confirmed = (
        Flag.objects.filter(status=Flag.Status.CONFIRMED)
        .exclude(pk__in=penalized)
        .select_related("record", "resolved_by")
        .order_by("pk")
    )
    made = [
        Penalty(
            account_id=flag.record.contributor_id,
            datanet_id=flag.record.datanet_id,
            record=flag.record,
            version_id=flag.version_id,
            flag=flag,
            epoch=epoch,
            points=POINTS_PER_CONFIRMED_FLAG,
            value=flag.severity,
            reason=penalty_reason(flag),
        )
        for flag in confirmed
    ]
    Penalty.objects.bulk_create(made, ignore_conflicts=True)
    per_datanet: dict[int, int] = defaultdict(int)
    for penalty in made:
        per_datanet[penalty.datanet_id] += 1
    for datanet in Datanet.objects.filter(pk__in=list(per_datanet)).order_by("pk"):
        standings_refresh(datanet)
    return dict(per_datanet)
