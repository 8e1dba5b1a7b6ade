"""Errors a user can cause, and how the API shows them: a sentence that says what was wrong and what to do."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.response import Response
from rest_framework.views import exception_handler

log = logging.getLogger(__name__)


class UserError(Exception):
    status_code = status.HTTP_400_BAD_REQUEST
    code = "invalid"

    def __init__(self, message: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}


class Forbidden(UserError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "forbidden"


class Conflict(UserError):
    status_code = status.HTTP_409_CONFLICT
    code = "conflict"


class NotFound(UserError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"


class TooLarge(UserError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    code = "too_large"


class QuotaExceeded(UserError):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    code = "quota_exceeded"


def validation_message(exc: DjangoValidationError) -> str:
    if hasattr(exc, "message_dict"):
        return " ".join(
            f"{field}: {' '.join(msgs)}" if field != "__all__" else " ".join(msgs)
            for field, msgs in exc.message_dict.items()
        )
    return " ".join(exc.messages)


def _drf_code(exc: Exception) -> str:
    if isinstance(exc, Http404):
        return "not_found"
    if isinstance(exc, PermissionDenied):
        return "permission_denied"
    if isinstance(exc, APIException):
        codes = exc.get_codes()
        return codes if isinstance(codes, str) else exc.default_code
    return "error"


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, UserError):
        return Response({"detail": exc.message, "code": exc.code, **exc.extra}, status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        return Response({"detail": validation_message(exc), "code": "invalid"}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return Response(
            {
                "detail": f"The request body is over {limit:,} bytes. Send files through the resumable upload API "
                "(POST /api/datanets/{slug}/uploads/, then PUT chunks), not in one JSON body.",
                "code": "too_large",
            },
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    response = exception_handler(exc, context)
    if response is not None:
        if isinstance(response.data, dict) and "detail" not in response.data:
            fields = "; ".join(
                f"{field}: {' '.join(str(m) for m in msgs) if isinstance(msgs, list) else msgs}"
                for field, msgs in response.data.items()
            )
            response.data = {"detail": fields, "code": "invalid", "fields": response.data}
        elif isinstance(response.data, dict) and "code" not in response.data:
            # DRF's own errors (parse, 401, 403, 404, 405, throttling) carry a code too, so clients can branch on it.
            response.data["code"] = _drf_code(exc)
        elif isinstance(response.data, list):
            response.data = {"detail": " ".join(str(m) for m in response.data), "code": _drf_code(exc)}
        return response
    if isinstance(exc, (Http404, PermissionDenied)):
        return None
    log.exception("unhandled API error")
    return Response(
        {"detail": "Something went wrong on our side. It has been logged; please try again.", "code": "server_error"},
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
