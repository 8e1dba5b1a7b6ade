"""Reads of core's rows, filtered to what the viewer may see."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from core.models import Job


def jobs_visible(user: Any) -> QuerySet[Job]:
    """Who started a job, and staff."""
    if getattr(user, "is_staff", False):
        return Job.objects.all()
    if not user.is_authenticated:
        return Job.objects.none()
    return Job.objects.filter(created_by=user)
