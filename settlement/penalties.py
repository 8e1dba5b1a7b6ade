"""Penalties: points for records the owner's model valued negatively, and each contributor's standing per Datanet.

Past a Datanet's threshold a contributor's uploads need one more approval (written into the datanets-owned
``ContributorStanding`` through ``contributor_standing_set``) and their epoch pool share is withheld (``epochs``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from accounts.models import User
from attribution.models import RecordValuation
from datanets.models import ContributorStanding, Datanet
from datanets.services import contributor_standing_set
from models_factory.models import ModelVersion
from settlement.models import Epoch, Penalty
from settlement.selectors import policy_for


def latest_valued_version(datanet: Datanet) -> ModelVersion | None:
    """The newest version of a model on this Datanet that has a valuation (its values decide pools and penalties)."""
    version_ids = RecordValuation.objects.filter(version__ml_model__datanet=datanet).values("version_id")
    return ModelVersion.objects.filter(pk__in=version_ids).order_by("-created_at", "-pk").first()


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


def standings_refresh(datanet: Datanet, account_ids: Iterable[int] | None = None) -> None:
    """Write each contributor's penalty points and extra approvals into their standing in the Datanet: one more
    approval once their points are over the policy's threshold (DESIGN.md, Rewards)."""
    threshold = policy_for(datanet).penalty_threshold
    points = points_by_account(datanet)
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


def _assess_penalties(epoch: Epoch, datanet: Datanet, version: ModelVersion) -> None:
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


def penalties_assess(epoch: Epoch) -> None:
    """Penalty points for every Datanet's negatively valued records (once per record and version)."""
    datanet_ids = set(RecordValuation.objects.values_list("version__ml_model__datanet_id", flat=True).distinct())
    for datanet in Datanet.objects.filter(pk__in=datanet_ids).order_by("pk"):
        version = latest_valued_version(datanet)
        if version is not None:
            _assess_penalties(epoch, datanet, version)
