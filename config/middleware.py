"""Answers that Django leaves empty get a page that says what happened and what to do."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed

from config.views import method_not_allowed


class ExplainEmptyErrorsMiddleware:
    """``require_POST`` and friends answer 405 with no body, which a browser shows as its own blank error page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if isinstance(response, HttpResponseNotAllowed) and not response.content:
            explained = method_not_allowed(request, allowed=response["Allow"])
            explained["Allow"] = response["Allow"]
            return explained
        return response
