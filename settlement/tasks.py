"""Celery interfaces: take an id, call one service. Safe to deliver twice (the job row is claimed once, and every
settlement step is idempotent)."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from settlement import anchoring, rewards


@shared_task(name="settlement.settle_epoch", autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def settle_epoch(job_id: str) -> None:
    anchoring.settle_job_run(job_id=job_id)


@shared_task(name="settlement.accrue_receipts", autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def accrue_receipts() -> int:
    return rewards.receipts_accrue()
