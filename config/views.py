"""Error pages that explain themselves (never a stack trace), and a health check."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


def _error(request: HttpRequest, status: int, title: str, detail: str) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"detail": detail, "code": title.lower().replace(" ", "_")}, status=status)
    return render(request, "error.html", {"title": title, "detail": detail, "status": status}, status=status)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error(request, 400, "Bad request", "The request could not be understood. Check the form and try again.")


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    detail = str(exception) if exception and str(exception) else "You are not allowed to do that."
    return _error(request, 403, "Forbidden", detail)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error(request, 404, "Not found", "There is nothing at this address. Check the link or go back.")


def method_not_allowed(request: HttpRequest, *, allowed: str) -> HttpResponse:
    if "POST" in allowed and request.method == "GET":
        detail = (
            "This address only takes a form's button press (POST), so there is nothing to show here. "
            "Go back to the page and use its button."
        )
    else:
        detail = f"This address does not take {request.method} requests; it takes {allowed}."
    return _error(request, 405, "Method not allowed", detail)


def server_error(request: HttpRequest) -> HttpResponse:
    return _error(
        request, 500, "Server error", "Something went wrong on our side. It has been logged; please try again."
    )


def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})
