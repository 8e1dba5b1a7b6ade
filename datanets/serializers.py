from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.urls import reverse
from rest_framework import serializers

from accounts.models import User
from core.serializers import JobSerializer
from datanets import selectors
from datanets.models import Contribution, Datanet, Record, RowError, Snapshot, SnapshotExport, Upload, Vote
from datanets.services.datanets import DATANET_FIELDS


class DatanetSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    curators = serializers.SlugRelatedField(
        many=True, slug_field="username", queryset=User.objects.all(), required=False, write_only=True
    )
    curator_usernames = serializers.SerializerMethodField()
    fields_spec = serializers.SerializerMethodField()
    counts = serializers.SerializerMethodField()

    class Meta:
        model = Datanet
        fields = [
            "id",
            "slug",
            *DATANET_FIELDS,
            "owner",
            "curators",
            "curator_usernames",
            "fields_spec",
            "counts",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "owner", "created_at", "updated_at"]
        extra_kwargs = {"slug": {"required": False, "validators": []}}

    def get_curator_usernames(self, datanet: Datanet) -> list[str]:
        return [m.user.username for m in datanet.memberships.filter(role="curator").select_related("user")]

    def get_fields_spec(self, datanet: Datanet) -> list[dict[str, Any]]:
        return [{"name": f.name, "required": f.required} for f in datanet.kind.fields]

    def get_counts(self, datanet: Datanet) -> dict[str, int] | None:
        if self.context.get("with_counts"):
            from datanets.selectors import datanet_counts

            return datanet_counts(datanet)
        return None


class RecordSerializer(serializers.ModelSerializer):
    # The related ids as plain integers (the same JSON as primary-key fields): a primary-key relation field costs a
    # lookup of the related object's attribute per row, a third of a 50-record review-queue page's serializing.
    datanet = serializers.IntegerField(source="datanet_id", read_only=True)
    contribution = serializers.IntegerField(source="contribution_id", read_only=True)
    duplicate_of = serializers.IntegerField(source="duplicate_of_id", read_only=True, allow_null=True)
    contributor = serializers.CharField(source="contributor.username", read_only=True)
    data = serializers.JSONField(
        source="content",
        read_only=True,
        help_text="The record's fields; a duplicate is stored as a link and shows its original's (duplicate_of).",
    )
    approvals = serializers.SerializerMethodField(
        help_text="Hidden (null) while the record is pending, except to staff."
    )
    rejections = serializers.SerializerMethodField(
        help_text="Hidden (null) while the record is pending, except to staff."
    )
    extra_votes = serializers.SerializerMethodField(
        help_text="Votes asked beyond the quorum because curators disagreed; hidden (null) while pending."
    )

    def _votes_open(self, record: Record) -> bool:
        request = self.context.get("request")
        return selectors.votes_open(getattr(request, "user", None) or AnonymousUser(), record)

    def get_approvals(self, record: Record) -> int | None:
        return record.approvals if self._votes_open(record) else None

    def get_rejections(self, record: Record) -> int | None:
        return record.rejections if self._votes_open(record) else None

    def get_extra_votes(self, record: Record) -> int | None:
        return record.extra_votes if self._votes_open(record) else None

    class Meta:
        model = Record
        fields = [
            "id",
            "datanet",
            "contribution",
            "contributor",
            "line_no",
            "data",
            "content_hash",
            "label",
            "status",
            "duplicate_of",
            "similarity",
            "approvals",
            "rejections",
            "extra_votes",
            "created_at",
            "resolved_at",
        ]


class RowErrorSerializer(serializers.ModelSerializer):
    class Meta:
        model = RowError
        fields = ["line_no", "message"]


class ContributionSerializer(serializers.ModelSerializer):
    contributor = serializers.CharField(source="contributor.username", read_only=True)
    job = JobSerializer(read_only=True, allow_null=True)

    class Meta:
        model = Contribution
        fields = [
            "id",
            "datanet",
            "contributor",
            "source",
            "filename",
            "file_sha256",
            "size_bytes",
            "status",
            "rows_seen",
            "records_new",
            "records_invalid",
            "records_duplicate",
            "records_near_duplicate",
            "records_over_quota",
            "error",
            "job",
            "created_at",
        ]


class UploadSerializer(serializers.ModelSerializer):
    class Meta:
        model = Upload
        fields = ["id", "datanet", "filename", "size", "received", "status", "column_map", "created_at"]
        read_only_fields = ["id", "datanet", "received", "status", "created_at"]


class UploadStartSerializer(serializers.Serializer):
    filename = serializers.CharField(max_length=255)
    size = serializers.IntegerField(min_value=0)
    column_map = serializers.DictField(child=serializers.CharField(), required=False)


class PasteSerializer(serializers.Serializer):
    text = serializers.CharField(trim_whitespace=False)
    format = serializers.ChoiceField(choices=["jsonl", "csv", "txt"], default="jsonl")


class VoteSerializer(serializers.ModelSerializer):
    curator = serializers.CharField(source="curator.username", read_only=True)

    class Meta:
        model = Vote
        fields = ["id", "record", "curator", "decision", "reason", "created_at"]
        read_only_fields = ["id", "record", "curator", "created_at"]


class SnapshotSerializer(serializers.ModelSerializer):
    datanet = serializers.CharField(source="datanet.slug", read_only=True)
    published_by = serializers.CharField(source="published_by.username", read_only=True)

    class Meta:
        model = Snapshot
        fields = [
            "id",
            "datanet",
            "version",
            "root",
            "record_count",
            "train_count",
            "validation_count",
            "validation_percent",
            "card",
            "notes",
            "published_by",
            "published_at",
        ]


class SnapshotPublishSerializer(serializers.Serializer):
    notes = serializers.CharField(required=False, allow_blank=True, default="")
    validation_percent = serializers.IntegerField(required=False, default=10, min_value=0, max_value=50)


class SnapshotExportSerializer(serializers.ModelSerializer):
    job = JobSerializer(read_only=True, allow_null=True)
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = SnapshotExport
        fields = ["id", "format", "ready", "size_bytes", "sha256", "job", "download_url"]

    def get_download_url(self, export: SnapshotExport) -> str | None:
        if not export.ready:
            return None
        return reverse(
            "datanets:export-download", args=[export.snapshot.datanet.slug, export.snapshot.version, export.format]
        )


class AppealFileSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text="rejection, flag or penalty (the kinds registered).")
    object_id = serializers.CharField(help_text="The id of the record (rejection), flag or penalty.")
    reason = serializers.CharField(max_length=5000)


class AppealVoteSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["uphold", "overturn"])
    reason = serializers.CharField(max_length=1000)


class AppealSerializer(serializers.Serializer):
    """An appeal as one of its parties sees it: the panel's votes stay blind to the panel until it is decided."""

    id = serializers.IntegerField()
    kind = serializers.CharField()
    object_id = serializers.CharField()
    datanet = serializers.CharField(source="datanet.slug")
    appellant = serializers.CharField(source="appellant.username")
    summary = serializers.CharField()
    reason = serializers.CharField()
    status = serializers.CharField()
    decider = serializers.CharField()
    deadline = serializers.DateTimeField()
    seed = serializers.CharField(help_text="Seed of the weighted draw (a 63-bit integer, as text).")
    panel = serializers.SerializerMethodField()
    votes = serializers.SerializerMethodField()
    outcome_reason = serializers.CharField()
    decided_by = serializers.SerializerMethodField()
    decided_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()

    def get_panel(self, appeal: Any) -> list[dict[str, Any]]:
        return [
            {"curator": a.curator.username, "weight": round(a.weight, 6)}
            for a in appeal.assignments.select_related("curator")
        ]

    def get_votes(self, appeal: Any) -> list[dict[str, Any]]:
        user = getattr(self.context.get("request"), "user", None) or AnonymousUser()
        return [
            {"voter": v.voter.username, "decision": v.decision, "reason": v.reason, "created_at": v.created_at}
            for v in selectors.appeal_votes_visible(user, appeal)
        ]

    def get_decided_by(self, appeal: Any) -> str | None:
        return appeal.decided_by.username if appeal.decided_by else None
