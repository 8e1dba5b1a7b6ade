"""Run the web server and a real Celery worker together; Ctrl-C stops both."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from demo.loader import DEMO_PASSWORD, DEMO_USERS


class Command(BaseCommand):
    help = "Start the web server and a Celery worker on the configured database and broker."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", default="8000")
        parser.add_argument("--no-worker", action="store_true")

    def handle(self, *args: Any, host: str, port: str, no_worker: bool, **options: Any) -> None:
        env = os.environ.copy()
        procs: list[subprocess.Popen[bytes]] = []
        if not no_worker:
            procs.append(
                subprocess.Popen(
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
                        "datanets@%h",
                    ],
                    env=env,
                )
            )
        procs.append(
            subprocess.Popen([sys.executable, "manage.py", "runserver", f"{host}:{port}", "--noreload"], env=env)
        )
        time.sleep(2)
        url = f"http://{host}:{port}/"
        db = settings.DATABASES["default"]
        lines = [
            "",
            "=" * 72,
            f"  Datanets is running at {url}",
            f"  API docs: {url}api/docs/",
            f"  Database: {db['ENGINE'].rsplit('.', 1)[-1]} {db['NAME']}",
            f"  Broker:   {settings.CELERY_BROKER_URL if settings.REDIS_URL else 'filesystem ' + str(settings.BROKER_DIR)}",
            f"  Logins (password '{DEMO_PASSWORD}' for all, demo only):",
            *[f"    {name:<10} {role}" for name, role in DEMO_USERS],
            "  Ctrl-C stops the web server and the worker.",
            "=" * 72,
            "",
        ]
        self.stdout.write("\n".join(lines))
        try:
            while all(p.poll() is None for p in procs):
                time.sleep(0.5)
            self.stderr.write("A process stopped; shutting down the other.")
        except KeyboardInterrupt:
            self.stdout.write("\nStopping…")
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 15
            for p in procs:
                try:
                    p.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    p.kill()
