"""A contributor's standing in a Datanet: the penalty points and extra approvals the rewards app decides."""

from __future__ import annotations

from django.db import transaction

from accounts.audit import audit_record
from datanets.models import ContributorStanding, Datanet


def contributor_standing_set(
    *, user_id: int, datanet: Datanet, penalty_points: int, extra_approvals: int, reason: str = ""
) -> ContributorStanding:
    """Set a contributor's standing in a Datanet (called by the rewards app when penalties or the rule change)."""
    with transaction.atomic():
        standing, _ = ContributorStanding.objects.select_for_update().get_or_create(user_id=user_id, datanet=datanet)
        before = {"penalty_points": standing.penalty_points, "extra_approvals": standing.extra_approvals}
        after = {"penalty_points": penalty_points, "extra_approvals": extra_approvals}
        if before == after and standing.reason == reason[:300]:
            return standing
        standing.penalty_points, standing.extra_approvals, standing.reason = (
            penalty_points,
            extra_approvals,
            reason[:300],
        )
        standing.save()
        audit_record(actor=None, action="standing.set", target=standing, before=before, after=after)
    return standing
