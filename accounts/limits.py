"""Rate limits a free account cannot multiply: login lockout and per-client counters in the shared cache.

The cache is one that every web process shares (Redis on the full stack, a file cache on the embedded default;
see config/settings.py), so a limit holds however many gunicorn workers serve the requests.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    # REMOTE_ADDR only: X-Forwarded-For is whatever the client says unless a trusted proxy rewrote it.
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def _key(*parts: str) -> str:
    return "limit:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def hit(bucket: str, who: str, *, window_s: int) -> int:
    """Count one event for ``who`` in ``bucket`` within a fixed window; returns the count so far (atomic)."""
    key = _key(bucket, who)
    if cache.add(key, 1, timeout=window_s):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=window_s)
        return 1


def count(bucket: str, who: str) -> int:
    return int(cache.get(_key(bucket, who)) or 0)


def reset(bucket: str, who: str) -> None:
    cache.delete(_key(bucket, who))


@dataclass(frozen=True)
class Lockout:
    locked: bool
    minutes: int = 0


def login_locked(*, username: str, ip: str) -> Lockout:
    """Locked when this username, or this address, failed too often within the lockout window."""
    minutes = max(1, settings.LOGIN_LOCKOUT_SECONDS // 60)
    if count("login-user", username.strip().lower()) >= settings.LOGIN_FAILURES_PER_USER:
        return Lockout(True, minutes)
    if count("login-ip", ip) >= settings.LOGIN_FAILURES_PER_IP:
        return Lockout(True, minutes)
    return Lockout(False)


def login_failed(*, username: str, ip: str) -> None:
    hit("login-user", username.strip().lower(), window_s=settings.LOGIN_LOCKOUT_SECONDS)
    hit("login-ip", ip, window_s=settings.LOGIN_LOCKOUT_SECONDS)


def login_succeeded(*, username: str) -> None:
    reset("login-user", username.strip().lower())
