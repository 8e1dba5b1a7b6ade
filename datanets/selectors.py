"""Reads: roles, review queues, stats. No writes here."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from accounts.models import User
from core.models import Job
from datanets.agreement import krippendorff_alpha_nominal, smoothed_kappa
from datanets.models import (
    Appeal,
    AppealVote,
    Contribution,
    ContributorStanding,
    Datanet,
    Membership,
    Record,
    SnapshotExport,
    Upload,
    Vote,
    VoteRequest,
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


# What the review page and the queue API show of a record: every column but the MinHash signature (a few hundred
# bytes a row that only near-duplicate detection reads), and of its contributor only the username.
REVIEW_QUEUE_FIELDS = (
    "id",
    "datanet",
    "contribution",
    "contributor",
    "contributor__username",
    "line_no",
    "data",
    "content_hash",
    "label",
    "status",
    "duplicate_of",
    "similarity",
    "approvals",
    "rejections",
    "created_at",
    "resolved_at",
)


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

    Keyset pagination keeps a page at a constant cost however deep the queue is (no OFFSET scan). The records come
    with their contributor's username and with ``datanet`` set to the one given, so that rendering a page (links go
    through the Datanet's slug) runs no query per row.
    """
    # The vote check starts at the same keyset point, so a deep page does not walk the curator's earlier votes.
    voted = Vote.objects.filter(record=OuterRef("pk"), curator=curator, record_id__gt=after_id)
    asked_of_another = VoteRequest.objects.filter(
        record=OuterRef("pk"), answered_at__isnull=True, expires_at__gt=timezone.now()
    ).exclude(curator=curator)
    qs = (
        Record.objects.filter(datanet=datanet, status=Record.Status.PENDING, id__gt=after_id)
        .exclude(contributor=curator)
        .filter(~Exists(voted))
        .filter(~Exists(asked_of_another))
    )
    if label:
        qs = qs.filter(label=label)
    if contributor:
        qs = qs.filter(contributor__username=contributor)
    if contribution_id:
        qs = qs.filter(contribution_id=contribution_id)
    # Two steps: the page's ids from an index-only scan of the covering pending index (record_pending_cover_idx
    # holds every column the filters read), then those rows by primary key. In one query the planner prefers to walk
    # the primary key in id order, which first skips every row of the Datanets created before this one (119 ms
    # against 0.3 ms at 1M records).
    ids = list(qs.order_by("id").values_list("id", flat=True)[:limit])
    records = list(
        Record.objects.filter(pk__in=ids).select_related("contributor").only(*REVIEW_QUEUE_FIELDS).order_by("id")
    )
    for record in records:
        record.datanet = datanet
    return records


def vote_requests_for(curator: User, datanet: Datanet) -> list[VoteRequest]:
    """Disputed records whose next vote was asked of this curator (shown first in their queue)."""
    return list(
        VoteRequest.objects.filter(
            curator=curator,
            record__datanet=datanet,
            record__status=Record.Status.PENDING,
            answered_at__isnull=True,
            expires_at__gt=timezone.now(),
        )
        .select_related("record__contributor")
        .order_by("expires_at")
    )


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


# A curator with no standing yet can still be drawn, rarely: everyone starts somewhere.
DRAW_FLOOR = 0.05


@dataclass
class CuratorStanding:
    """How one curator's judgement has held up in one Datanet.

    ``kappa`` is the chance-corrected agreement of their votes with final outcomes (outcomes after appeals), so
    approving everything scores about 0 however many votes it casts; ``appeal_factor`` falls as appeals go against
    them (as panelist, or as one who made the decision overturned); ``standing`` is their product, in [0, 1]."""

    user_id: int
    username: str
    votes: int = 0
    approvals: int = 0
    rejections: int = 0
    resolved: int = 0
    agreed: int = 0
    kappa: float = 0.0
    appeals: int = 0
    appeals_agreed: int = 0
    standing: float = 0.0

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.resolved if self.resolved else None

    @property
    def appeal_agreement(self) -> float | None:
        return self.appeals_agreed / self.appeals if self.appeals else None

    @property
    def appeal_factor(self) -> float:
        return (self.appeals_agreed + 2) / (self.appeals + 2)

    @property
    def draw_weight(self) -> float:
        return DRAW_FLOOR + self.standing


RESOLVED = [Record.Status.APPROVED, Record.Status.REJECTED]


def curator_standings(datanet: Datanet, *, include_former: bool = False) -> dict[int, CuratorStanding]:
    """Standing of each of the Datanet's curators (and, with ``include_former``, of everyone who voted in it)."""
    out: dict[int, CuratorStanding] = {u.pk: CuratorStanding(u.pk, u.username) for u in curators_of(datanet)}
    pairs: dict[int, list[tuple[bool, bool]]] = defaultdict(list)
    rows = Vote.objects.filter(record__datanet=datanet).values_list(
        "curator_id", "curator__username", "decision", "record__status"
    )
    for curator_id, username, decision, status in rows.iterator(chunk_size=5000):
        if curator_id not in out:
            if not include_former:
                continue
            out[curator_id] = CuratorStanding(curator_id, username)
        s = out[curator_id]
        s.votes += 1
        approve = decision == Vote.Decision.APPROVE
        s.approvals += approve
        s.rejections += not approve
        if status in RESOLVED:
            approved = status == Record.Status.APPROVED
            s.resolved += 1
            s.agreed += approve == approved
            pairs[curator_id].append((approve, approved))
    decided = Appeal.deciders.through.objects.filter(appeal__datanet=datanet).exclude(appeal__status=Appeal.Status.OPEN)
    for voter, status in decided.values_list("user_id", "appeal__status"):
        if voter in out:
            out[voter].appeals += 1
            out[voter].appeals_agreed += status == Appeal.Status.UPHELD
    panel = AppealVote.objects.filter(appeal__datanet=datanet).exclude(appeal__status=Appeal.Status.OPEN)
    for curator_id, decision, status in panel.values_list("voter_id", "decision", "appeal__status"):
        if curator_id in out:
            out[curator_id].appeals += 1
            out[curator_id].appeals_agreed += (decision == AppealVote.Decision.OVERTURN) == (
                status == Appeal.Status.OVERTURNED
            )
    for curator_id, s in out.items():
        s.kappa = smoothed_kappa(pairs[curator_id])
        s.standing = max(0.0, s.kappa) * s.appeal_factor
    return out


def curator_stats(datanet: Datanet) -> list[dict[str, Any]]:
    """Per curator: votes cast, agreement with final outcomes and with appeals, and the standing they give."""
    return [
        {
            "curator": s.username,
            "votes": s.votes,
            "approvals": s.approvals,
            "rejections": s.rejections,
            "resolved": s.resolved,
            "agreement": s.agreement,
            "kappa": round(s.kappa, 4),
            "appeals": s.appeals,
            "appeal_agreement": s.appeal_agreement,
            "standing": round(s.standing, 4),
        }
        for s in sorted(curator_standings(datanet).values(), key=lambda s: s.username)
    ]


def datanet_agreement(datanet: Datanet) -> dict[str, Any]:
    """Krippendorff's alpha (nominal) of curators' votes on resolved records, overall and per label. Pending
    records are left out: their votes are blind until they resolve."""
    units: dict[int, list[str]] = defaultdict(list)
    label_of: dict[int, str] = {}
    rows = Vote.objects.filter(record__datanet=datanet, record__status__in=RESOLVED).values_list(
        "record_id", "record__label", "decision"
    )
    for record_id, label, decision in rows.iterator(chunk_size=5000):
        units[record_id].append(decision)
        label_of[record_id] = label
    by_label: dict[str, list[list[str]]] = defaultdict(list)
    for record_id, values in units.items():
        by_label[label_of[record_id]].append(values)
    paired = [v for v in units.values() if len(v) > 1]
    return {
        "alpha": krippendorff_alpha_nominal(units.values()),
        "units": len(paired),
        "labels": [
            {
                "label": label or "(none)",
                "alpha": krippendorff_alpha_nominal(values),
                "units": sum(1 for v in values if len(v) > 1),
            }
            for label, values in sorted(by_label.items())
        ],
    }


def vote_request_open(record: Record) -> VoteRequest | None:
    """The extra vote this record asked for and still waits on, if any (expired requests no longer bind)."""
    return (
        VoteRequest.objects.filter(record=record, answered_at__isnull=True, expires_at__gt=timezone.now())
        .select_related("curator")
        .first()
    )


# ---- appeals -------------------------------------------------------------------------------------------------


def appeal_parties(appeal: Appeal) -> set[int]:
    """Who may read an appeal's votes and reasons: the appellant, those who made the decision, the panel and
    the Datanet's owner (and staff, who see everything)."""
    panel = set(appeal.assignments.values_list("curator_id", flat=True))
    deciders = set(appeal.deciders.values_list("pk", flat=True))
    return {appeal.appellant_id, appeal.datanet.owner_id, *deciders, *panel}


def appeal_is_party(user: User, appeal: Appeal) -> bool:
    if not user.is_authenticated:
        return False
    return bool(user.is_staff or user.is_superuser) or user.pk in appeal_parties(appeal)


def appeals_visible(user: User) -> QuerySet[Appeal]:
    """Appeals the user is a party to (everyone's for staff)."""
    appeals = Appeal.objects.select_related("datanet__owner", "appellant", "decided_by")
    if getattr(user, "is_staff", False) or getattr(user, "is_superuser", False):
        return appeals
    if not user.is_authenticated:
        return appeals.none()
    return appeals.filter(
        Q(appellant=user) | Q(datanet__owner=user) | Q(assignments__curator=user) | Q(deciders=user)
    ).distinct()


def appeal_votes_visible(user: User, appeal: Appeal) -> QuerySet[AppealVote]:
    """The panel judges blind too: until the appeal is decided a panelist sees only their own vote."""
    votes = appeal.votes.select_related("voter")
    if not appeal_is_party(user, appeal):
        return votes.none()
    if not appeal.is_open or user.is_staff:
        return votes
    return votes.filter(voter_id=user.pk)


def appeals_to_judge(user: User, datanet: Datanet | None = None) -> QuerySet[Appeal]:
    """Open appeals waiting on this user: drawn for the panel and not yet voted, or fallen to them as owner."""
    if not user.is_authenticated:
        return Appeal.objects.none()
    voted = AppealVote.objects.filter(appeal=OuterRef("pk"), voter=user)
    qs = Appeal.objects.filter(status=Appeal.Status.OPEN).filter(
        (Q(decider=Appeal.Decider.PANEL, assignments__curator=user) & ~Exists(voted))
        | Q(decider=Appeal.Decider.OWNER, datanet__owner=user)
    )
    if datanet is not None:
        qs = qs.filter(datanet=datanet)
    return qs.exclude(appellant=user).select_related("datanet", "appellant").distinct().order_by("deadline")


def appeal_for(kind: str, object_id: str | int) -> Appeal | None:
    return Appeal.objects.filter(kind=kind, object_id=str(object_id)).first()


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
