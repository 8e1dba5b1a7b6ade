"""API throttles: a scoped limit on the writes of a view (its reads stay under the per-user rate only)."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.throttling import ScopedRateThrottle


class WriteScopedRateThrottle(ScopedRateThrottle):
    """``throttle_scope`` on a view limits its POST/PUT/PATCH/DELETE requests per user (or address when anonymous)."""

    def allow_request(self, request: Request, view: Any) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return super().allow_request(request, view)
