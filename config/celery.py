"""The Celery app. Workers: ``celery -A config worker -Q default,attribution,gpu,short``."""

from __future__ import annotations

import logging
import os
import resource

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("datanets")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

log = logging.getLogger(__name__)


def memory_limit_apply(limit_mb: int) -> None:
    """Cap this process's address space at ``limit_mb`` MiB (0: leave it). Past it allocations fail with
    MemoryError in this process alone, instead of the kernel's OOM killer picking a victim on the machine."""
    if limit_mb <= 0:
        return
    limit = limit_mb * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


@worker_process_init.connect
def _limit_child_memory(**kwargs: object) -> None:
    from django.conf import settings

    memory_limit_apply(settings.WORKER_MEMORY_LIMIT_MB)
    if settings.WORKER_MEMORY_LIMIT_MB:
        log.info("worker child %d: address space limited to %d MiB", os.getpid(), settings.WORKER_MEMORY_LIMIT_MB)
