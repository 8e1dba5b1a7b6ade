"""Integration: training on a real Celery worker; a worker killed mid-run resumes from its last checkpoint."""

from __future__ import annotations

import pytest

from conftest import wait_for, wait_for_job
from core.models import Job
from models_factory import services
from models_factory.models import ModelVersion, TrainingRun
from models_factory.tests.factories import qa_records, snapshot_with

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_worker_killed_mid_training_resumes_from_checkpoint_and_registers_once(worker):
    datanet, snapshot = snapshot_with(qa_records(16), record_kind="qa", labels=[])
    model = services.model_create(builder=datanet.owner, datanet_slug=datanet.slug, name="QA")
    run = services.training_run_create(
        actor=datanet.owner,
        ml_model=model,
        snapshot=snapshot,
        base_model="tiny",
        hyperparameters={"epochs": 100, "batch_size": 1, "max_length": 64, "checkpoint_every": 10},
    )

    def past_first_checkpoints() -> bool:
        r = TrainingRun.objects.select_related("job").get(pk=run.pk)
        if r.job.status not in Job.ACTIVE:
            raise AssertionError(f"the run ended before it could be interrupted: {r.job.status} {r.job.error}")
        return r.step >= 25

    wait_for(past_first_checkpoints, timeout=180, interval=0.1, what="training to pass a few checkpoints")
    worker.kill()
    assert Job.objects.get(pk=run.job_id).status == Job.Status.RUNNING
    assert not ModelVersion.objects.exists()  # never a half model

    worker.start()
    job = wait_for_job(run.job_id, timeout=300)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.attempts >= 2
    assert job.result["resumed_from_step"] and job.result["resumed_from_step"] >= 10
    assert ModelVersion.objects.filter(run=run).count() == 1
