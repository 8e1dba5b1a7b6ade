"""Shared fixtures. Tests that need background work talk to a real Celery worker process (``worker`` fixture)
on the same broker and database the suite runs against: the filesystem broker and a SQLite file by default,
Redis and PostgreSQL when REDIS_URL and DATABASE_URL are set (as .ci/run does)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    # A fresh filesystem broker per run: messages left by an earlier, interrupted run must not leak in.
    broker = Path(os.environ.get("DATANETS_BROKER_DIR", ROOT / "var" / "test-broker"))
    if not os.environ.get("REDIS_URL") and broker.exists():
        shutil.rmtree(broker, ignore_errors=True)
    for name in ("queue", "processed", "control"):
        (broker / name).mkdir(parents=True, exist_ok=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Browser tests skip at collection time on a machine without Chromium, so no worker or demo starts for nothing.
    from datanets.tests.browser.conftest import _skip_reason

    reason = _skip_reason()
    if reason is None:
        return
    for item in items:
        if item.get_closest_marker("browser") is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def _fresh_limits() -> Iterator[None]:
    """Throttle and lockout counters start at zero in every test."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture(autouse=True)
def _media_root(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    settings.MEDIA_ROOT = str(ROOT / "var" / "test-media")


def database_url_for_worker() -> str:
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{db['NAME']}"


class Worker:
    """A real ``celery worker`` process, started and killed like an operator would."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        # One log per test session: parallel sessions must never read each other's "ready." line.
        self.log = ROOT / "var" / f"test-worker-{os.getpid()}.log"
        self._offset = 0

    def start(self, *, extra_env: dict[str, str] | None = None) -> None:
        if self.proc and self.proc.poll() is None:
            return
        env = {**self.env, **(extra_env or {})}
        self.log.parent.mkdir(parents=True, exist_ok=True)
        logfile = open(self.log, "ab")
        self._offset = self.log.stat().st_size
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                "default,attribution,gpu,short",
                "--concurrency",
                "1",
                "--loglevel",
                "INFO",
                "-n",
                f"test-{os.getpid()}@%h",
                "--without-mingle",
                "--without-gossip",
            ],
            cwd=ROOT,
            env=env,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery worker exited at start; see {self.log}")
            if b"ready." in self.log.read_bytes()[self._offset :]:
                return
            time.sleep(0.2)
        raise RuntimeError(f"celery worker did not become ready in 60 s; see {self.log}")

    def kill(self) -> None:
        """kill -9 the worker and its pool children at once, as a crash or an OOM killer would."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def worker_process(django_db_setup: None, django_db_blocker: Any) -> Iterator[Worker]:
    with django_db_blocker.unblock():
        url = database_url_for_worker()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": url,
        "JOB_STALE_SECONDS": "3",
        "PYTHONUNBUFFERED": "1",
        "MEDIA_ROOT": str(ROOT / "var" / "test-media"),
    }
    if settings.REDIS_URL:
        from config.celery import app

        app.control.purge()
    worker = Worker(env)
    (ROOT / "var").mkdir(exist_ok=True)
    worker.log.write_bytes(b"")
    yield worker
    worker.stop()


@pytest.fixture
def worker(worker_process: Worker, transactional_db: None, settings: Any) -> Worker:
    """A running worker; the test's data is committed so the worker sees it."""
    settings.JOB_STALE_SECONDS = 3
    worker_process.start()
    return worker_process


def wait_for(predicate: Any, *, timeout: float = 60, interval: float = 0.2, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_for_job(job_id: Any, *, timeout: float = 90) -> Any:
    from core.models import Job

    def finished() -> Any:
        job = Job.objects.get(pk=job_id)
        return job if job.status not in Job.ACTIVE else None

    return wait_for(finished, timeout=timeout, what=f"job {job_id} to finish")
