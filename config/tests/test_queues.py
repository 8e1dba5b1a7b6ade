"""Short jobs and long jobs go to different queues, and `make run` starts a worker for each."""

from __future__ import annotations

from django.conf import settings

from config.celery import app
from demo.management.commands.run_platform import worker_commands


def queue_of(task: str) -> str:
    return app.amqp.router.route({}, task)["queue"].name


def test_short_jobs_and_long_jobs_are_routed_to_different_queues():
    short = {"datanets.ingest_contribution", "settlement.accrue_receipts", "datanets.requeue_stale_jobs"}
    long = {"attribution.build_index", "attribution.value_epoch", "datanets.export_snapshot", "settlement.settle_epoch"}
    assert {queue_of(t) for t in short} == {settings.QUEUE_SHORT}
    assert {queue_of(t) for t in long} == {settings.QUEUE_LONG}
    assert queue_of("models_factory.tasks.train_model") == settings.QUEUE_GPU


def test_run_platform_starts_one_worker_for_short_jobs_apart_from_the_long_ones():
    commands = worker_commands(short=2, long=1)
    queues = [set(argv[argv.index("-Q") + 1].split(",")) for argv in commands]
    assert queues == [{settings.QUEUE_SHORT}, {settings.QUEUE_LONG, settings.QUEUE_GPU}]
    assert commands[0][commands[0].index("--concurrency") + 1] == "2"
    # Every queue a task is routed to has a worker.
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()} | {settings.CELERY_TASK_DEFAULT_QUEUE}
    assert routed <= set().union(*queues)
    names = [argv[argv.index("-n") + 1] for argv in commands]
    assert len(set(names)) == 2  # two nodes on one host need different names
