from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse

from core.models import Job
from datanets.ingest.schema import RECORD_KINDS

RECORD_KIND_CHOICES = [(key, kind.name) for key, kind in RECORD_KINDS.items()]


class Datanet(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_datanets")
    title = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    domain = models.CharField(max_length=60, help_text="For example: medical, legal, finance, support.")
    description = models.TextField(blank=True)
    license = models.CharField(max_length=60, default="CC-BY-4.0")
    guidelines = models.TextField(blank=True, help_text="What a good contribution looks like.")
    record_kind = models.CharField(max_length=20, choices=RECORD_KIND_CHOICES, default="text")
    labels = models.JSONField(default=list, blank=True, help_text="The fixed label set for labeled text.")
    approvals_needed = models.PositiveSmallIntegerField(
        default=2, validators=[MinValueValidator(1), MaxValueValidator(20)]
    )
    rejections_needed = models.PositiveSmallIntegerField(
        default=2, validators=[MinValueValidator(1), MaxValueValidator(20)]
    )
    max_extra_votes = models.PositiveSmallIntegerField(
        default=2,
        validators=[MaxValueValidator(10)],
        help_text="When curators disagree on a record, it asks for one more curator at a time, up to this many.",
    )
    appeal_panel = models.PositiveSmallIntegerField(
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(9)],
        help_text="Curators drawn to judge an appeal; with fewer eligible, the owner decides it.",
    )
    near_dup_threshold = models.FloatField(
        default=0.8,
        validators=[MinValueValidator(0.5), MaxValueValidator(1.0)],
        help_text="Jaccard similarity of word 3-shingles above which a record is a near duplicate.",
    )
    is_public = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(approvals_needed__gte=1), name="approvals_needed_positive"),
            models.CheckConstraint(condition=Q(rejections_needed__gte=1), name="rejections_needed_positive"),
        ]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("datanets:detail", args=[self.slug])

    def clean(self) -> None:
        if self.record_kind == "labeled_text":
            labels = [str(label).strip() for label in (self.labels or []) if str(label).strip()]
            if len(labels) < 2:
                raise ValidationError({"labels": "Labeled text needs at least two labels."})
            if len(set(labels)) != len(labels):
                raise ValidationError({"labels": "Each label may appear only once."})
            self.labels = labels
        elif self.labels:
            raise ValidationError({"labels": "Only labeled-text Datanets have a label set."})

    @property
    def kind(self):  # -> RecordKind
        return RECORD_KINDS[self.record_kind]


class Membership(models.Model):
    class Role(models.TextChoices):
        CURATOR = "curator", "Curator"
        CONTRIBUTOR = "contributor", "Contributor"

    datanet = models.ForeignKey(Datanet, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["datanet", "user", "role"], name="unique_membership_role")]


class Upload(models.Model):
    """A resumable chunked upload: bytes land in a partial file until the last chunk, then move to storage."""

    class Status(models.TextChoices):
        OPEN = "open", "Receiving"
        COMPLETE = "complete", "Complete"
        ABORTED = "aborted", "Aborted"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    datanet = models.ForeignKey(Datanet, on_delete=models.CASCADE, related_name="uploads")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="uploads")
    filename = models.CharField(max_length=255)
    size = models.BigIntegerField()
    received = models.BigIntegerField(default=0)
    column_map = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    contribution = models.ForeignKey(
        "Contribution", null=True, blank=True, on_delete=models.SET_NULL, related_name="uploads"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)


class Contribution(models.Model):
    """One file or paste from one contributor. The same file twice in a Datanet is one contribution."""

    class Source(models.TextChoices):
        FILE = "file", "File"
        PASTE = "paste", "Paste"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        INGESTING = "ingesting", "Ingesting"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    datanet = models.ForeignKey(Datanet, on_delete=models.CASCADE, related_name="contributions")
    contributor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="contributions")
    source = models.CharField(max_length=10, choices=Source.choices)
    filename = models.CharField(max_length=255)
    file_sha256 = models.CharField(max_length=64)
    blob_name = models.CharField(max_length=300, help_text="Content-addressed name in the default storage.")
    size_bytes = models.BigIntegerField()
    column_map = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="contributions")
    rows_seen = models.BigIntegerField(default=0)
    records_new = models.BigIntegerField(default=0)
    records_invalid = models.BigIntegerField(default=0)
    records_duplicate = models.BigIntegerField(default=0)
    records_near_duplicate = models.BigIntegerField(default=0)
    records_over_quota = models.BigIntegerField(default=0)
    last_line = models.BigIntegerField(default=0, help_text="Last line committed: ingestion resumes after it.")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["datanet", "file_sha256"], name="unique_file_per_datanet"),
        ]

    def __str__(self) -> str:
        return f"{self.filename} by {self.contributor}"

    def get_absolute_url(self) -> str:
        return reverse("datanets:contribution", args=[self.datanet.slug, self.pk])


class RowError(models.Model):
    contribution = models.ForeignKey(Contribution, on_delete=models.CASCADE, related_name="row_errors")
    line_no = models.BigIntegerField()
    message = models.CharField(max_length=500)

    class Meta:
        ordering = ["line_no"]
        constraints = [models.UniqueConstraint(fields=["contribution", "line_no"], name="unique_error_line")]


class Record(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Awaiting review"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        DUPLICATE = "duplicate", "Exact duplicate"
        NEAR_DUPLICATE = "near_duplicate", "Near duplicate"

    # No single-column indexes on these three: each leads a composite index below, which serves the same lookups,
    # and every index is maintained for every ingested record.
    datanet = models.ForeignKey(Datanet, on_delete=models.CASCADE, related_name="records", db_index=False)
    contribution = models.ForeignKey(Contribution, on_delete=models.CASCADE, related_name="records", db_index=False)
    contributor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="records", db_index=False
    )
    line_no = models.BigIntegerField()
    data = models.JSONField()
    content_hash = models.CharField(max_length=64)
    label = models.CharField(max_length=100, blank=True, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    duplicate_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="duplicates")
    similarity = models.FloatField(null=True, blank=True)
    minhash = models.BinaryField(null=True, blank=True)
    approvals = models.PositiveSmallIntegerField(default=0)
    rejections = models.PositiveSmallIntegerField(default=0)
    extra_votes = models.PositiveSmallIntegerField(
        default=0, help_text="Votes asked for beyond the quorum because curators disagreed (adaptive quorum)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["contribution", "line_no"], name="unique_record_line"),
            # One original per content hash in a Datanet; exact copies are kept, marked and linked to it.
            models.UniqueConstraint(
                fields=["datanet", "content_hash"], condition=~Q(status="duplicate"), name="unique_original_hash"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["duplicate", "near_duplicate"], duplicate_of__isnull=False)
                | (~Q(status__in=["duplicate", "near_duplicate"]) & Q(duplicate_of__isnull=True)),
                name="duplicates_are_linked",
            ),
        ]
        indexes = [
            models.Index(fields=["datanet", "status", "id"], name="record_queue_idx"),
            # The review queue reads pending records of one Datanet in id order; the index covers every column its
            # filters read, so a page of ids is an index-only scan (PostgreSQL; other databases use the one above).
            models.Index(
                fields=["datanet", "id"],
                include=["contributor", "label", "contribution"],
                condition=Q(status="pending"),
                name="record_pending_cover_idx",
            ),
            models.Index(fields=["contributor", "status"], name="record_contributor_idx"),
            models.Index(fields=["datanet", "content_hash"], name="record_hash_idx"),
        ]

    def __str__(self) -> str:
        return f"record {self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("datanets:record", args=[self.datanet.slug, self.pk])

    @property
    def content(self) -> dict[str, Any]:
        """The record's fields. A duplicate stores none of its own (``data`` is ``{}``): they are its original's,
        and an exact copy of a near duplicate links to that near duplicate, so follow the links."""
        record: Record | None = self
        for _ in range(4):
            if record is None or record.data or record.duplicate_of_id is None:
                break
            record = record.duplicate_of
        return record.data if record is not None else {}

    @property
    def is_link(self) -> bool:
        """Stored as a link to its original, without data of its own."""
        return self.duplicate_of_id is not None and not self.data

    @property
    def is_resolved(self) -> bool:
        return self.status != self.Status.PENDING

    @property
    def earns_credit(self) -> bool:
        return self.status == self.Status.APPROVED


class ContributorStanding(models.Model):
    """A contributor's standing in one Datanet: penalty points and the extra approvals their uploads need.

    Owned here, because review reads it on every vote; the rewards app keeps it current through
    ``contributor_standing_set`` whenever penalties or the penalty rule change.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="standings")
    datanet = models.ForeignKey(Datanet, on_delete=models.CASCADE, related_name="standings")
    penalty_points = models.PositiveIntegerField(default=0)
    extra_approvals = models.PositiveSmallIntegerField(default=0)
    reason = models.CharField(max_length=300, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "datanet"], name="one_standing_per_user_datanet")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.datanet_id}: {self.penalty_points} points, +{self.extra_approvals}"


class Vote(models.Model):
    class Decision(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"

    record = models.ForeignKey(Record, on_delete=models.CASCADE, related_name="votes")
    curator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="votes")
    decision = models.CharField(max_length=8, choices=Decision.choices)
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["record", "curator"], name="one_vote_per_curator")]
        indexes = [models.Index(fields=["curator", "record"], name="vote_curator_idx")]


class Snapshot(models.Model):
    """An immutable, content-hashed version of a Datanet's approved records."""

    datanet = models.ForeignKey(Datanet, on_delete=models.PROTECT, related_name="snapshots")
    version = models.PositiveIntegerField()
    root = models.CharField(max_length=64, help_text="SHA-256 Merkle root of the record hashes in canonical order.")
    record_count = models.BigIntegerField()
    train_count = models.BigIntegerField(default=0)
    validation_count = models.BigIntegerField(default=0)
    validation_percent = models.PositiveSmallIntegerField(default=10)
    manifest_name = models.CharField(max_length=300, blank=True)
    card = models.JSONField(default=dict)
    notes = models.TextField(blank=True)
    published_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    published_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version"]
        constraints = [models.UniqueConstraint(fields=["datanet", "version"], name="unique_snapshot_version")]

    def __str__(self) -> str:
        return f"{self.datanet.slug} v{self.version}"

    def get_absolute_url(self) -> str:
        return reverse("datanets:snapshot", args=[self.datanet.slug, self.version])


class SnapshotRecord(models.Model):
    class Split(models.TextChoices):
        TRAIN = "train", "Train"
        VALIDATION = "validation", "Validation"

    snapshot = models.ForeignKey(Snapshot, on_delete=models.CASCADE, related_name="entries")
    record = models.ForeignKey(Record, on_delete=models.PROTECT, related_name="snapshot_entries")
    position = models.BigIntegerField(help_text="Index in the canonical manifest order.")
    split = models.CharField(max_length=10, choices=Split.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["snapshot", "record"], name="unique_snapshot_record"),
            models.UniqueConstraint(fields=["snapshot", "position"], name="unique_snapshot_position"),
        ]


class SnapshotExport(models.Model):
    class Format(models.TextChoices):
        JSONL = "jsonl", "JSON Lines"
        PARQUET = "parquet", "Parquet"

    snapshot = models.ForeignKey(Snapshot, on_delete=models.CASCADE, related_name="exports")
    format = models.CharField(max_length=10, choices=Format.choices)
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    blob_name = models.CharField(max_length=300, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["snapshot", "format"], name="unique_snapshot_export")]

    @property
    def ready(self) -> bool:
        return bool(self.blob_name)


class VoteRequest(models.Model):
    """An extra vote a disputed record asked of one curator, drawn by standing (adaptive quorum). While it is
    open and not expired, only that curator casts the record's next vote."""

    record = models.ForeignKey(Record, on_delete=models.CASCADE, related_name="vote_requests")
    curator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="vote_requests")
    round = models.PositiveSmallIntegerField()
    seed = models.BigIntegerField()
    weight = models.FloatField(help_text="The curator's draw weight (from standing) when drawn.")
    expires_at = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["record", "round"], name="one_vote_request_per_round"),
            models.UniqueConstraint(fields=["record", "curator"], name="one_vote_request_per_curator"),
        ]


class Appeal(models.Model):
    """A party's appeal of one decision, named by kind and id (a rejection here; a confirmed flag or a penalty
    from the apps that register those kinds in ``datanets.appeals``). One appeal per decision."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        UPHELD = "upheld", "Upheld (the decision stands)"
        OVERTURNED = "overturned", "Overturned"

    class Decider(models.TextChoices):
        PANEL = "panel", "Curators drawn by standing"
        OWNER = "owner", "The Datanet's owner"

    kind = models.CharField(max_length=20)
    object_id = models.CharField(max_length=64)
    datanet = models.ForeignKey(Datanet, on_delete=models.CASCADE, related_name="appeals")
    appellant = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="appeals")
    reason = models.TextField()
    summary = models.CharField(max_length=300, help_text="The decision appealed, in words.")
    decider = models.CharField(max_length=10, choices=Decider.choices, default=Decider.PANEL)
    seed = models.BigIntegerField(help_text="Seed of the weighted draw, so anyone can replay it.")
    deciders = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="decisions_appealed", help_text="Who made the decision."
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN, db_index=True)
    deadline = models.DateTimeField()
    outcome_reason = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "object_id"], name="one_appeal_per_decision"),
            models.CheckConstraint(
                condition=Q(status="open") | Q(decided_at__isnull=False), name="decided_appeal_has_time"
            ),
        ]

    def __str__(self) -> str:
        return f"appeal {self.pk} of {self.kind} {self.object_id}"

    def get_absolute_url(self) -> str:
        return reverse("datanets:appeal", args=[self.datanet.slug, self.pk])

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN


class AppealAssignment(models.Model):
    """A curator drawn for an appeal's panel, with the weight they were drawn by."""

    appeal = models.ForeignKey(Appeal, on_delete=models.CASCADE, related_name="assignments")
    curator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="appeal_assignments")
    weight = models.FloatField()
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["appeal", "curator"], name="one_assignment_per_curator")]


class AppealVote(models.Model):
    class Decision(models.TextChoices):
        UPHOLD = "uphold", "Uphold the decision"
        OVERTURN = "overturn", "Overturn it"

    appeal = models.ForeignKey(Appeal, on_delete=models.CASCADE, related_name="votes")
    voter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="appeal_votes")
    decision = models.CharField(max_length=10, choices=Decision.choices)
    reason = models.CharField(max_length=1000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["appeal", "voter"], name="one_appeal_vote_per_voter")]
