"""Reads: roles, review queues, stats. No writes here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from accounts.models import User
from core.models import Job
from datanets.models import (
    Contribution,
    ContributorStanding,
    Datanet,
    Membership,
    Record,
    SnapshotExport,
    Upload,
    Vote,
)


def is_owner(user: User, datanet: Datanet) -> bool:
    return user.is_authenticated and (datanet.owner_id == user.pk or user.is_superuser)


def is_curator(user: User, datanet: Datanet) -> bool:
    if not user.is_authenticated:
        return False
    return Membership.objects.filter(datanet=datanet, user=user, role=Membership.Role.CURATOR).exists()


def can_contribute(user: User, datanet: Datanet) -> bool:
    if not user.is_authenticated:
        return False
    if datanet.is_public or is_owner(user, datanet):
        return True
    return Membership.objects.filter(datanet=datanet, user=user).exists()


def can_view(user: User, datanet: Datanet) -> bool:
    return datanet.is_public or can_contribute(user, datanet)


def curators_of(datanet: Datanet) -> QuerySet[User]:
    return User.objects.filter(memberships__datanet=datanet, memberships__role=Membership.Role.CURATOR).order_by(
        "username"
    )


def extra_approvals_for(user_id: int, datanet: Datanet) -> int:
    """Approvals this contributor's uploads need beyond the Datanet's quorum (from their standing; 0 by default)."""
    standing = ContributorStanding.objects.filter(user_id=user_id, datanet=datanet).only("extra_approvals").first()
    return standing.extra_approvals if standing else 0


def datanet_ids_visible(user: User) -> QuerySet[Datanet]:
    """Ids of the Datanets this user may see, for use as a subquery (superusers see all, as ``is_owner`` says)."""
    if getattr(user, "is_superuser", False):
        return Datanet.objects.values("pk")
    if user.is_authenticated:
        return Datanet.objects.filter(Q(is_public=True) | Q(owner=user) | Q(memberships__user=user)).values("pk")
    return Datanet.objects.filter(is_public=True).values("pk")


def records_visible(user: User) -> QuerySet[Record]:
    """Records the user may read: in a Datanet they can see, and, while pending, only to the record's contributor,
    the Datanet's owner and curators, and staff (a pending record is not yet part of the Datanet)."""
    records = Record.objects.filter(datanet__in=datanet_ids_visible(user))
    if getattr(user, "is_staff", False):
        return records
    if not user.is_authenticated:
        return records.exclude(status=Record.Status.PENDING)
    curated = Membership.objects.filter(user=user, role=Membership.Role.CURATOR).values("datanet_id")
    return records.filter(
        ~Q(status=Record.Status.PENDING) | Q(contributor=user) | Q(datanet__owner=user) | Q(datanet_id__in=curated)
    )


def votes_open(user: User, record: Record) -> bool:
    """Curators judge independently: until a record resolves, its votes (and their counts) are for staff only."""
    return record.status != Record.Status.PENDING or bool(getattr(user, "is_staff", False))


def votes_visible(user: User, record: Record) -> QuerySet[Vote]:
    votes = record.votes.select_related("curator")
    if votes_open(user, record):
        return votes
    return votes.filter(curator_id=user.pk) if user.is_authenticated else votes.none()


def datanets_visible(user: User) -> QuerySet[Datanet]:
    qs = Datanet.objects.select_related("owner").filter(pk__in=datanet_ids_visible(user))
    return qs.annotate(
        n_records=Count("records", filter=~Q(records__status__in=["duplicate", "near_duplicate"]), distinct=True),
        n_approved=Count("records", filter=Q(records__status="approved"), distinct=True),
        n_contributors=Count("records__contributor", distinct=True),
        n_snapshots=Count("snapshots", distinct=True),
    )


def datanet_counts(datanet: Datanet) -> dict[str, int]:
    rows = Record.objects.filter(datanet=datanet).values("status").annotate(n=Count("id"))
    counts = {status: 0 for status, _ in Record.Status.choices}
    for row in rows:
        counts[row["status"]] = row["n"]
    counts["total"] = sum(counts.values())
    counts["contributors"] = Record.objects.filter(datanet=datanet).values("contributor").distinct().count()
    return counts


def review_queue(
    *,
    datanet: Datanet,
    curator: User,
    after_id: int = 0,
    limit: int = 50,
    label: str = "",
    contributor: str = "",
    contribution_id: int | None = None,
) -> list[Record]:
    """Pending records this curator may still vote on, oldest first, keyset-paginated by id.

    Keyset pagination keeps a page at a constant cost however deep the queue is (no OFFSET scan).
    """
    voted = Vote.objects.filter(record=OuterRef("pk"), curator=curator)
    qs = (
        Record.objects.filter(datanet=datanet, status=Record.Status.PENDING, id__gt=after_id)
        .exclude(contributor=curator)
        .filter(~Exists(voted))
    )
    if label:
        qs = qs.filter(label=label)
    if contributor:
        qs = qs.filter(contributor__username=contributor)
    if contribution_id:
        qs = qs.filter(contribution_id=contribution_id)
    return list(qs.select_related("contributor").order_by("id")[:limit])


def start_of_today() -> datetime:
    return datetime.combine(timezone.now().date(), time.min, tzinfo=UTC)


def quota_used_today(user: User) -> dict[str, int]:
    since = start_of_today()
    records = (
        Record.objects.filter(contributor=user, created_at__gte=since)
        .exclude(status__in=[Record.Status.DUPLICATE, Record.Status.NEAR_DUPLICATE])
        .count()
    )
    totals = Contribution.objects.filter(contributor=user, created_at__gte=since).aggregate(
        size=Sum("size_bytes"), rows=Sum("rows_seen")
    )
    return {"records": records, "bytes": int(totals["size"] or 0), "rows": int(totals["rows"] or 0)}


def upload_bytes_reserved(user: User, *, exclude: Any = None) -> int:
    """Declared bytes of the user's uploads still in progress: they count against the daily quota from the start."""
    uploads = Upload.objects.filter(user=user, status=Upload.Status.OPEN)
    if exclude is not None:
        uploads = uploads.exclude(pk=exclude.pk)
    return int(uploads.aggregate(s=Sum("size"))["s"] or 0)


def curator_stats(datanet: Datanet) -> list[dict[str, Any]]:
    """Per curator: votes cast, and how often the vote agreed with the record's final outcome."""
    stats = []
    for curator in curators_of(datanet):
        votes = Vote.objects.filter(record__datanet=datanet, curator=curator)
        resolved = votes.filter(record__status__in=[Record.Status.APPROVED, Record.Status.REJECTED])
        agreed = resolved.filter(
            Q(decision=Vote.Decision.APPROVE, record__status=Record.Status.APPROVED)
            | Q(decision=Vote.Decision.REJECT, record__status=Record.Status.REJECTED)
        ).count()
        n_resolved = resolved.count()
        stats.append(
            {
                "curator": curator.username,
                "votes": votes.count(),
                "approvals": votes.filter(decision=Vote.Decision.APPROVE).count(),
                "rejections": votes.filter(decision=Vote.Decision.REJECT).count(),
                "resolved": n_resolved,
                "agreement": (agreed / n_resolved) if n_resolved else None,
            }
        )
    return stats


def contributor_stats(datanet: Datanet, users: Sequence[User] | None = None) -> list[dict[str, Any]]:
    qs = Record.objects.filter(datanet=datanet)
    if users is not None:
        qs = qs.filter(contributor__in=users)
    rows = (
        qs.values("contributor__username")
        .annotate(
            submitted=Count("id"),
            approved=Count("id", filter=Q(status=Record.Status.APPROVED)),
            rejected=Count("id", filter=Q(status=Record.Status.REJECTED)),
            pending=Count("id", filter=Q(status=Record.Status.PENDING)),
            duplicates=Count("id", filter=Q(status__in=[Record.Status.DUPLICATE, Record.Status.NEAR_DUPLICATE])),
        )
        .order_by("-submitted")
    )
    out = []
    for row in rows:
        decided = row["approved"] + row["rejected"]
        out.append(
            {
                "contributor": row["contributor__username"],
                "submitted": row["submitted"],
                "approved": row["approved"],
                "rejected": row["rejected"],
                "pending": row["pending"],
                "duplicates": row["duplicates"],
                "acceptance_rate": (row["approved"] / decided) if decided else None,
            }
        )
    return out


def ingest_job_readable(user: User, job: Job) -> bool:
    """A Datanet's owner watches the ingestion of every contribution to it (read-only)."""
    return Contribution.objects.filter(job=job, datanet__owner=user).exists()


def export_job_readable(user: User, job: Job) -> bool:
    """A Datanet's owner watches every export of its snapshots (read-only)."""
    return SnapshotExport.objects.filter(job=job, snapshot__datanet__owner=user).exists()
