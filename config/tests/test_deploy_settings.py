"""Production settings: the app refuses the public dev key outside development, and `check --deploy` is clean with
the settings README.md's Production section documents."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION = {
    "SECRET_KEY": "a-long-random-production-secret-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFG",
    "ALLOWED_HOSTS": "datanets.example.org",
    "CSRF_TRUSTED_ORIGINS": "https://datanets.example.org",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
    "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO=https",
}


def manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in {"DATANETS_DEV", "SECRET_KEY", "DEBUG"}}
    base.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATANETS_VAR_DIR=str(tmp_path),
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        **env,
    )
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=base, capture_output=True, text=True, timeout=120
    )


def test_refuses_to_start_without_a_secret_key_outside_development(tmp_path: Path) -> None:
    result = manage(tmp_path, "check")
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr and "DATANETS_DEV=1" in result.stderr


def test_refuses_the_public_dev_key_when_set_explicitly(tmp_path: Path) -> None:
    result = manage(tmp_path, "check", SECRET_KEY="dev-only-insecure-key-change-me-with-SECRET_KEY")
    assert result.returncode != 0 and "SECRET_KEY is not set" in result.stderr


def test_development_flag_allows_the_dev_key_with_plain_http_cookies(tmp_path: Path) -> None:
    code = "from django.conf import settings as s; print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE)"
    result = manage(tmp_path, "shell", "--no-imports", "-c", code, DATANETS_DEV="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_check_deploy_is_clean_with_the_documented_production_settings(tmp_path: Path) -> None:
    # Every tag, not only security: a warning from any app (the schema generator's included) fails it.
    result = manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    code = "from django.conf import settings as s; print(s.SESSION_COOKIE_SECURE, s.SECURE_PROXY_SSL_HEADER)"
    shown = manage(tmp_path, "shell", "--no-imports", "-c", code, **PRODUCTION)
    assert shown.stdout.strip() == "True ('HTTP_X_FORWARDED_PROTO', 'https')"


def test_check_deploy_warns_when_https_settings_are_missing(tmp_path: Path) -> None:
    result = manage(
        tmp_path,
        "check",
        "--deploy",
        "--tag",
        "security",
        "--fail-level",
        "WARNING",
        SECRET_KEY=PRODUCTION["SECRET_KEY"],
    )
    assert result.returncode != 0 and "SECURE_HSTS_SECONDS" in result.stdout + result.stderr


def test_a_malformed_proxy_header_fails_at_start_with_the_expected_form(tmp_path: Path) -> None:
    result = manage(tmp_path, "check", **{**PRODUCTION, "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto"})
    assert result.returncode != 0 and "must look like HTTP_X_FORWARDED_PROTO=https" in result.stderr
