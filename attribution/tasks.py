from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from attribution.indexes import index_build
from attribution.valuation import valuation_run


@shared_task(name="attribution.build_index", autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def build_index(job_id: str) -> None:
    index_build(job_id=job_id)


@shared_task(name="attribution.value_epoch", autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def value_epoch(job_id: str) -> None:
    valuation_run(job_id=job_id)
