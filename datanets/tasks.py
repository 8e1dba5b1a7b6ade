"""Celery interfaces: take a job id, call one service. Safe to deliver twice (the job row is claimed once)."""

from __future__ import annotations

from celery import shared_task
from celery.signals import worker_ready
from django.db import OperationalError

from core.jobs import jobs_requeue_stale, stale_after
from datanets.services.appeals import appeals_expire
from datanets.services.ingestion import contribution_ingest
from datanets.services.snapshots import snapshot_export_run
from datanets.services.uploads import uploads_expire


@shared_task(name="datanets.ingest_contribution", autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def ingest_contribution(job_id: str) -> None:
    contribution_ingest(job_id=job_id)


@shared_task(name="datanets.export_snapshot", autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def export_snapshot(job_id: str) -> None:
    snapshot_export_run(job_id=job_id)


@shared_task(name="datanets.requeue_stale_jobs")
def requeue_stale_jobs() -> int:
    return jobs_requeue_stale()


@shared_task(name="datanets.expire_uploads")
def expire_uploads() -> int:
    return uploads_expire()


@shared_task(name="datanets.expire_appeals")
def expire_appeals() -> int:
    return appeals_expire()


@worker_ready.connect
def _requeue_on_start(sender: object = None, **kwargs: object) -> None:
    # Jobs whose worker died (kill -9 loses the filesystem broker's message) are sent again; the check repeats
    # once their heartbeats are certainly stale, for jobs that were running when this worker started.
    jobs_requeue_stale()
    requeue_stale_jobs.apply_async(countdown=stale_after().total_seconds() + 1)
