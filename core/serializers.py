from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from core.models import Job


class JobSerializer(serializers.ModelSerializer):
    percent = serializers.FloatField(read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "status",
            "percent",
            "progress_done",
            "progress_total",
            "progress_unit",
            "message",
            "error",
            "result",
            "attempts",
            "max_attempts",
            "created_at",
            "started_at",
            "finished_at",
            "url",
        ]

    def get_url(self, job: Job) -> str:
        return reverse("api:job-detail", args=[job.id])
