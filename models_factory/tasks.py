from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from models_factory import services


@shared_task(
    name="models_factory.tasks.train_model", autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3
)
def train_model(job_id: str) -> None:
    # Late acknowledgement (settings): a worker killed mid-run gets this redelivered, and the trainer resumes
    # from its last checkpoint; a version is registered only once, at the very end.
    services.training_run_execute(job_id=job_id)


@shared_task(name="models_factory.expire_model_zips")
def expire_model_zips() -> int:
    return services.model_zips_expire()
