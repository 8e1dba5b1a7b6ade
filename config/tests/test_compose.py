"""docker-compose.yml cannot run here (no Docker engine); check that it parses and names only real things."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {"web", "worker", "worker-long", "gpu-worker", "beat", "postgres", "redis", "minio", "chain"}


def load() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_parses_and_has_every_service():
    services = load()["services"]
    assert REQUIRED <= set(services)
    gpu = services["gpu-worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    assert "-Q gpu" in services["gpu-worker"]["command"]
    # Short and long jobs have separate worker processes: a training run never holds up a paste's ingestion.
    assert "-Q default " in services["worker"]["command"]
    assert "-Q long " in services["worker-long"]["command"]


def _commands(command: str) -> list[list[str]]:
    if command.startswith("sh -c "):
        inner = shlex.split(command)[2]
        return [shlex.split(part) for part in inner.split("&&")]
    return [shlex.split(command)]


def test_every_project_command_in_compose_exists():
    services = load()["services"]
    django_commands = set(get_commands())
    checked = 0
    for name, service in services.items():
        if service.get("image", "").startswith("datanets") or "build" in service:
            for argv in _commands(service["command"]):
                if argv[0] == "python" and argv[1] == "manage.py":
                    assert argv[2] in django_commands, f"{name}: manage.py {argv[2]} does not exist"
                elif argv[0] == "gunicorn":
                    module, _, attr = argv[1].partition(":")
                    assert (ROOT / (module.replace(".", "/") + ".py")).exists(), f"{name}: {module} missing"
                    assert attr == "application"
                elif argv[0] == "celery":
                    assert argv[1:3] == ["-A", "config"] and (ROOT / "config" / "celery.py").exists()
                    assert argv[3] in {"worker", "beat"}
                else:
                    raise AssertionError(f"{name}: unexpected command {argv}")
                checked += 1
    assert checked >= 5
    assert (ROOT / "Dockerfile").exists()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and " . " not in line + " ":
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), f"Dockerfile copies {src}, which does not exist"


def test_beat_schedule_names_a_registered_task():
    from django.conf import settings

    from config.celery import app

    app.loader.import_default_modules()
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert entry["task"] in app.tasks


def test_only_the_web_app_is_published_and_only_on_loopback():
    services = load()["services"]
    for name, service in services.items():
        ports = service.get("ports", [])
        if name == "web":
            assert ports and all(str(p).startswith("127.0.0.1:") for p in ports)
        else:
            assert not ports, f"{name} publishes {ports}: internal services stay on the compose network"


def test_no_secret_is_written_in_the_compose_file():
    text = (ROOT / "docker-compose.yml").read_text()
    services = load()["services"]
    for key in ("SECRET_KEY", "S3_SECRET_ACCESS_KEY"):
        assert services["web"]["environment"][key].startswith("${"), f"{key} must come from .env"
    assert services["minio"]["environment"]["MINIO_ROOT_PASSWORD"].startswith("${")
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${")
    assert "datanets-secret" not in text and "change-me" not in text
    assert (ROOT / ".env.example").exists()
