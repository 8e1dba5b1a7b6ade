"""Job rows: the truth about background work.

A task claims its job with one conditional UPDATE, so a task delivered twice (broker redelivery, or the requeue
on worker start) runs the work once. Workers requeue, on start, jobs that were queued or whose running worker
stopped sending heartbeats: the filesystem broker loses a message when the whole worker is killed. A running job
whose holder process on this host is gone is taken over at once, heartbeat or not: a killed pool child's task is
redelivered within a second, long before its heartbeat goes stale. A job started ``max_attempts`` times without
finishing is failed rather than run again: a file that kills its worker must not be retried forever.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from core.models import Job

log = logging.getLogger(__name__)

# kind -> dotted Celery task name that takes (job_id: str). Filled only by register(), from each app's ready(),
# so that a worker knows every kind before it requeues stale jobs, whatever it has imported.
_TASKS: dict[str, str] = {}
# kind -> what else must change when a job of that kind is failed here, not by its own task (attempts exhausted).
_ON_ABANDONED: dict[str, Callable[[Job], None]] = {}
# kind -> who besides its creator and staff may read a job of that kind (register_reader).
_READERS: dict[str, Callable[[Any, Job], bool]] = {}
WORKER_STOPPED = "the worker stopped while running it (out of memory?)"


def register(kind: str, task: str) -> None:
    """Name the Celery task (it takes the job id) that runs jobs of ``kind``. Call it from ``AppConfig.ready()``."""
    known = _TASKS.get(kind)
    if known is not None and known != task:
        raise ValueError(f"job kind {kind!r} is already registered to {known!r}")
    _TASKS[kind] = task


def register_abandoned(kind: str, handler: Callable[[Job], None]) -> None:
    """Call ``handler(job)`` when a job of ``kind`` is failed after its attempts ran out (the task never finished,
    so whatever it would have marked failed is still marked in progress)."""
    _ON_ABANDONED[kind] = handler


def register_reader(kind: str, reader: Callable[[Any, Job], bool]) -> None:
    """``reader(user, job)`` says whether ``user`` may read (never cancel) a job of ``kind`` they did not start:
    the app that owns the job's target knows who may see it (a Datanet's owner sees the jobs that ran on it)."""
    _READERS[kind] = reader


def job_readable(*, user: Any, job: Job) -> bool:
    """Who started the job, staff, and whoever the job's app lets read it."""
    if getattr(user, "is_staff", False) or (user.is_authenticated and job.created_by_id == user.pk):
        return True
    reader = _READERS.get(job.kind)
    return bool(user.is_authenticated and reader is not None and reader(user, job))


def registered_kinds() -> dict[str, str]:
    return dict(_TASKS)


def task_for(kind: str) -> str:
    try:
        return _TASKS[kind]
    except KeyError:
        raise LookupError(f"no task is registered for job kind {kind!r}; register it in its app's ready()") from None


def stale_after() -> timedelta:
    return timedelta(seconds=getattr(settings, "JOB_STALE_SECONDS", 60))


def job_create(*, kind: str, target_id: str | int = "", user: Any = None, message: str = "") -> Job:
    task_for(kind)  # refuse a kind no worker could run, before a row is written
    return Job.objects.create(
        kind=kind,
        target_id=str(target_id),
        created_by=user if user and user.is_authenticated else None,
        message=message or "Waiting for a worker",
    )


def job_enqueue(job: Job) -> None:
    """Send the job's task once the surrounding transaction commits (a worker must see the row)."""
    from config.celery import app

    task_name = task_for(job.kind)
    job_id = str(job.id)
    transaction.on_commit(lambda: app.send_task(task_name, args=[job_id]))


def this_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _holder_gone(holder: str) -> bool:
    """The process named by ``holder`` ran on this host and is no longer alive (another host's cannot be seen)."""
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's
    return False


def _claimable(now: Any) -> Q:
    return (
        Q(status=Job.Status.QUEUED)
        | Q(status=Job.Status.RUNNING, heartbeat_at__lt=now - stale_after())
        | Q(status=Job.Status.RUNNING, heartbeat_at__isnull=True)
    )


def job_claim(*, job_id: str) -> Job | None:
    """Mark the job running if nobody else runs it. Returns None when it is finished, owned by a live worker, or
    out of attempts (then it is failed here, saying so)."""
    now = timezone.now()
    claimable = _claimable(now)
    current = Job.objects.filter(pk=job_id, status=Job.Status.RUNNING).values_list("holder", flat=True).first()
    if current and _holder_gone(current):
        # Its heartbeat may be fresh, but the process that sent it is dead: the row is ours to take over.
        claimable |= Q(status=Job.Status.RUNNING, holder=current)
    claimed = Job.objects.filter(claimable, pk=job_id, attempts__lt=F("max_attempts")).update(
        status=Job.Status.RUNNING,
        started_at=now,
        heartbeat_at=now,
        attempts=F("attempts") + 1,
        holder=this_holder(),
        message="Started",
    )
    if not claimed:
        _jobs_fail_exhausted(Job.objects.filter(claimable, pk=job_id))
        return None
    return Job.objects.get(pk=job_id)


def _jobs_fail_exhausted(candidates: Any) -> int:
    """Fail the jobs among ``candidates`` (claimable ones) that have used all their attempts."""
    failed = 0
    for job in candidates.filter(attempts__gte=F("max_attempts")):
        error = f"failed after {job.attempts} attempts: {job.error or WORKER_STOPPED}"
        done = Job.objects.filter(pk=job.pk, status=job.status, attempts=job.attempts).update(
            status=Job.Status.FAILED, error=error, message=error[:500], finished_at=timezone.now()
        )
        if done:
            failed += 1
            log.warning("job %s %s", job.pk, error)
            job.refresh_from_db()
            handler = _ON_ABANDONED.get(job.kind)
            if handler is not None:
                handler(job)
    return failed


class JobProgress:
    """Writes progress to the job row at most every ``interval`` seconds; every write is a heartbeat."""

    def __init__(self, job: Job, *, total: int = 0, unit: str = "items", interval: float = 0.5) -> None:
        self.job = job
        self.interval = interval
        self._last = 0.0
        self.started = time.monotonic()
        Job.objects.filter(pk=job.pk).update(progress_total=total, progress_unit=unit)

    def update(self, done: int, *, total: int | None = None, message: str = "", force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        fields: dict[str, Any] = {"progress_done": done, "heartbeat_at": timezone.now()}
        if total is not None:
            fields["progress_total"] = total
        if message:
            fields["message"] = message[:500]
        Job.objects.filter(pk=self.job.pk).update(**fields)

    def cancelled(self) -> bool:
        return Job.objects.filter(pk=self.job.pk, cancel_requested=True).exists()


def job_succeed(*, job: Job, result: dict[str, Any] | None = None, message: str = "Done") -> None:
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.SUCCEEDED,
        result=result or {},
        message=message[:500],
        finished_at=timezone.now(),
        progress_done=F("progress_total"),
    )


def job_fail(*, job: Job, error: str, message: str = "Failed") -> None:
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.FAILED, error=error, message=message[:500], finished_at=timezone.now()
    )


def job_run(job_id: str, work: Callable[[Job], None]) -> None:
    """Claim the job and run ``work``; an unexpected error fails the job with a readable message and re-raises."""
    job = job_claim(job_id=job_id)
    if job is None:
        log.info("job %s is finished or running elsewhere; skipping", job_id)
        return
    try:
        work(job)
    except Exception as exc:  # the job row must say what happened, whatever it was
        log.exception("job %s failed", job_id)
        job_fail(job=job, error=f"{type(exc).__name__}: {exc}", message="Failed unexpectedly; see the error")
        raise


def jobs_requeue_stale() -> int:
    """Re-send jobs left queued or running by a worker that died. Safe to call on every worker start."""
    from config.celery import app

    cutoff = timezone.now() - stale_after()
    stale = Job.objects.filter(
        Q(status=Job.Status.QUEUED, created_at__lt=cutoff)
        | Q(status=Job.Status.RUNNING, heartbeat_at__lt=cutoff)
        | Q(status=Job.Status.RUNNING, heartbeat_at__isnull=True)
    ).filter(kind__in=list(_TASKS))
    _jobs_fail_exhausted(stale)
    stale = stale.filter(attempts__lt=F("max_attempts"))
    count = 0
    for job in stale:
        app.send_task(_TASKS[job.kind], args=[str(job.id)])
        count += 1
    if count:
        log.warning("requeued %d job(s) left by a stopped worker", count)
    return count
