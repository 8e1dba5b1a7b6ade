"""Job claims: an attempt cap for jobs that keep killing their worker, and takeover from a holder that is gone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from config.celery import memory_limit_apply
from core import jobs
from core.models import Job

pytestmark = pytest.mark.django_db


def running_job(**fields) -> Job:
    defaults = {"kind": "export", "status": Job.Status.RUNNING, "heartbeat_at": timezone.now(), "attempts": 1}
    return Job.objects.create(**{**defaults, **fields})


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_claim_records_the_holder_and_counts_the_attempt():
    job = Job.objects.create(kind="export")
    claimed = jobs.job_claim(job_id=str(job.pk))
    assert claimed is not None
    assert claimed.holder == f"{socket.gethostname()}:{os.getpid()}" and claimed.attempts == 1
    assert claimed.max_attempts == 3


def test_a_fresh_job_whose_holder_process_is_gone_is_taken_over():
    """A killed pool child's task is redelivered at once, while its heartbeat is fresh: before, it was skipped and
    the job stayed running for good."""
    job = running_job(holder=f"{socket.gethostname()}:{dead_pid()}")
    claimed = jobs.job_claim(job_id=str(job.pk))
    assert claimed is not None and claimed.attempts == 2


@pytest.mark.parametrize(
    "holder",
    [f"{socket.gethostname()}:{os.getppid()}", f"another-host.example:{os.getpid() + 1}", ""],
    ids=["alive-here", "another-host", "unknown"],
)
def test_a_fresh_job_held_by_a_live_or_unseen_process_is_left_alone(holder):
    job = running_job(holder=holder)
    assert jobs.job_claim(job_id=str(job.pk)) is None
    assert Job.objects.get(pk=job.pk).status == Job.Status.RUNNING


def test_a_job_out_of_attempts_fails_saying_so_instead_of_running_again():
    stale = timezone.now() - timedelta(hours=1)
    job = running_job(attempts=3, heartbeat_at=stale)
    assert jobs.job_claim(job_id=str(job.pk)) is None
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error == "failed after 3 attempts: the worker stopped while running it (out of memory?)"
    assert job.message == job.error and job.finished_at is not None


def test_requeue_fails_exhausted_jobs_and_sends_none_of_them(monkeypatch):
    from config.celery import app

    sent: list[str] = []
    monkeypatch.setattr(app, "send_task", lambda name, args: sent.append(args[0]))
    stale = timezone.now() - timedelta(hours=1)
    exhausted = running_job(attempts=2, max_attempts=2, heartbeat_at=stale, error="MemoryError: ")
    assert jobs.jobs_requeue_stale() == 0 and sent == []
    exhausted.refresh_from_db()
    assert exhausted.status == Job.Status.FAILED
    assert exhausted.error == "failed after 2 attempts: MemoryError: "


def test_memory_limit_turns_a_runaway_allocation_into_memory_error():
    script = (
        "from config.celery import memory_limit_apply\n"
        "memory_limit_apply(512)\n"
        "try:\n    bytearray(1024 ** 3)\nexcept MemoryError:\n    print('MemoryError')\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "MemoryError"
    memory_limit_apply(0)  # 0 leaves this process alone
