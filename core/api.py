"""The job API: who started a job (and staff) can watch it and cancel it; for anyone else it does not exist.

A job's message, error and result can name what it works on (a private Datanet's file, a model's metrics), and
core cannot ask the apps to its right who may see a job's target, so the rule is the simplest one that leaks
nothing."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from core.models import Job
from core.selectors import jobs_visible
from core.serializers import JobSerializer


class JobViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = JobSerializer
    permission_classes = [permissions.AllowAny]
    queryset = Job.objects.none()

    def get_queryset(self) -> QuerySet[Job]:
        return jobs_visible(self.request.user)

    @extend_schema(request=None, responses=JobSerializer)
    @action(detail=True, methods=["post"], permission_classes=[permissions.IsAuthenticated])
    def cancel(self, request: Request, pk: str) -> Response:
        job = get_object_or_404(jobs_visible(request.user), pk=pk)
        if job.is_active:
            Job.objects.filter(pk=job.pk).update(cancel_requested=True)
            job.refresh_from_db()
        return Response(JobSerializer(job).data)
