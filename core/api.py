"""The job API: who started a job (and staff) can watch it and cancel it; the apps name who else may watch one
(``jobs.register_reader``: a Datanet's owner watches the jobs that ran on it); for anyone else it does not exist.

A job's message, error and result can name what it works on (a private Datanet's file, a model's metrics); core
cannot ask the apps to its right who may see a job's target, so they register a reader for their kinds."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from core.errors import Forbidden
from core.jobs import job_readable
from core.models import Job
from core.selectors import jobs_visible
from core.serializers import JobSerializer


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


class JobViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = JobSerializer
    permission_classes = [permissions.AllowAny]
    queryset = Job.objects.none()

    def get_queryset(self) -> QuerySet[Job]:
        return Job.objects.all()

    def get_object(self) -> Job:
        job = Job.objects.filter(pk=self.kwargs["pk"]).first() if _is_uuid(self.kwargs["pk"]) else None
        if job is None or not job_readable(user=self.request.user, job=job):
            raise Http404  # the same answer for a job that exists and one that does not
        return job

    @extend_schema(request=None, responses=JobSerializer)
    @action(detail=True, methods=["post"], permission_classes=[permissions.IsAuthenticated])
    def cancel(self, request: Request, pk: str) -> Response:
        job = self.get_object()
        if not jobs_visible(request.user).filter(pk=job.pk).exists():
            raise Forbidden("Only who started this job (or an admin) can cancel it; you can watch it.")
        if job.is_active:
            Job.objects.filter(pk=job.pk).update(cancel_requested=True)
            job.refresh_from_db()
        return Response(JobSerializer(job).data)
