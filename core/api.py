"""The job API: anyone with a job's id can watch it; only who started it (or staff) can cancel it."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from core.errors import Forbidden
from core.models import Job
from core.serializers import JobSerializer


class JobViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = JobSerializer
    permission_classes = [permissions.AllowAny]
    queryset = Job.objects.all()

    @extend_schema(request=None, responses=JobSerializer)
    @action(detail=True, methods=["post"], permission_classes=[permissions.IsAuthenticated])
    def cancel(self, request: Request, pk: str) -> Response:
        job = get_object_or_404(Job, pk=pk)
        if job.created_by_id != request.user.pk and not request.user.is_staff:
            raise Forbidden("Only the person who started this job can cancel it.")
        if job.is_active:
            Job.objects.filter(pk=job.pk).update(cancel_requested=True)
            job.refresh_from_db()
        return Response(JobSerializer(job).data)
