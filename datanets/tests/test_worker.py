"""Integration: a real Celery worker process on the configured broker and database does the background work."""

from __future__ import annotations

import pytest

from accounts.tests.factories import UserFactory
from conftest import wait_for, wait_for_job
from core.models import Job
from datanets import services
from datanets.models import Contribution, Record, RowError
from datanets.tests.factories import DatanetFactory, add_curators, distinct_records, jsonl

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_worker_ingests_an_upload_and_builds_an_export(worker, tmp_path):
    datanet = DatanetFactory(approvals_needed=1)
    (curator,) = add_curators(datanet, 1)
    alice = UserFactory()
    path = tmp_path / "a.jsonl"
    path.write_bytes(jsonl(distinct_records(50)) + b"{broken\n")
    result = services.contribution_from_path(user=alice, datanet=datanet, path=path, filename="a.jsonl")
    job = wait_for_job(result.contribution.job_id)
    assert job.status == Job.Status.SUCCEEDED, job.error
    c = Contribution.objects.get(pk=result.contribution.pk)
    assert (c.records_new, c.records_invalid) == (50, 1)
    assert RowError.objects.get(contribution=c).line_no == 51

    for record in Record.objects.filter(contribution=c)[:10]:
        services.vote_cast(curator=curator, record_id=record.pk, decision="approve")
    snapshot = services.snapshot_publish(actor=datanet.owner, datanet=datanet)
    export = services.snapshot_export_request(actor=datanet.owner, snapshot=snapshot, fmt="parquet")
    job = wait_for_job(export.job_id)
    assert job.status == Job.Status.SUCCEEDED, job.error
    export.refresh_from_db()
    assert export.ready and export.size_bytes > 0


def test_worker_killed_mid_ingestion_finishes_on_restart_without_loss_or_doubling(worker, tmp_path, settings):
    """kill -9 of the whole worker mid-job; a new worker picks the job up and resumes after the last batch."""
    n = 30_000
    worker.stop()
    worker.start(extra_env={"INGEST_BATCH_SIZE": "500"})
    datanet = DatanetFactory()
    alice = UserFactory()
    records = distinct_records(n, words=12)
    path = tmp_path / "big.jsonl"
    path.write_bytes(jsonl(records))
    result = services.contribution_from_path(user=alice, datanet=datanet, path=path, filename="big.jsonl")
    contribution_id = result.contribution.pk

    def some_but_not_all() -> bool:
        done = Contribution.objects.get(pk=contribution_id).last_line
        return 0 < done < n - 5000

    wait_for(some_but_not_all, timeout=120, interval=0.05, what="ingestion to be part-way")
    worker.kill()
    partial = Contribution.objects.get(pk=contribution_id).last_line
    assert 0 < partial < n
    assert Job.objects.get(pk=result.contribution.job_id).status == Job.Status.RUNNING

    worker.start(extra_env={"INGEST_BATCH_SIZE": "500"})
    job = wait_for_job(result.contribution.job_id, timeout=240)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.attempts >= 2
    c = Contribution.objects.get(pk=contribution_id)
    lines = list(Record.objects.filter(contribution=c).order_by("line_no").values_list("line_no", flat=True))
    assert lines == list(range(1, n + 1))  # none lost, none doubled
    assert c.rows_seen == n
    assert c.records_new + c.records_duplicate + c.records_near_duplicate == n
    worker.stop()


def test_killing_only_the_pool_child_hands_the_job_to_the_next_child_at_once(worker, tmp_path):
    """kill -9 of the pool child alone: the task is redelivered to the new child while the job's heartbeat is still
    fresh (stale only after 10 minutes here), so only the dead holder lets it take over. Before: running for good."""
    import os
    import signal
    import socket

    n = 30_000  # enough batches that a poll sees the job part-way: set-based batches of 500 store in milliseconds
    env = {"INGEST_BATCH_SIZE": "500", "JOB_STALE_SECONDS": "600"}
    worker.stop()
    worker.start(extra_env=env)
    datanet = DatanetFactory()
    path = tmp_path / "big.jsonl"
    path.write_bytes(jsonl(distinct_records(n, words=12)))
    result = services.contribution_from_path(user=UserFactory(), datanet=datanet, path=path, filename="big.jsonl")
    contribution_id = result.contribution.pk

    def part_way() -> bool:
        return 0 < Contribution.objects.get(pk=contribution_id).last_line < n - 5000

    wait_for(part_way, timeout=120, interval=0.05, what="ingestion to be part-way")
    holder = Job.objects.get(pk=result.contribution.job_id).holder
    host, _, pid = holder.rpartition(":")
    assert host == socket.gethostname() and int(pid) != worker.proc.pid  # the pool child, not the main process
    with open(f"/proc/{pid}/limits") as limits:
        address_space = next(line for line in limits if line.startswith("Max address space"))
    assert address_space.split()[3] == str(12288 * 1024 * 1024)  # WORKER_MEMORY_LIMIT_MB, set in the child
    os.kill(int(pid), signal.SIGKILL)

    job = wait_for_job(result.contribution.job_id, timeout=120)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.attempts == 2 and job.holder != holder
    lines = list(Record.objects.filter(contribution_id=contribution_id).values_list("line_no", flat=True))
    assert sorted(lines) == list(range(1, n + 1))
    worker.stop()
