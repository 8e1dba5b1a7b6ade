"""Where apps to the right of the Model Factory (attribution, ...) plug into it without it importing them.

An app subscribes from its ``AppConfig.ready()``; the Model Factory's services and views call the subscribers
explicitly, in the order they subscribed (no Django signals, no side effects in ``save()``):

- ``on_version_registered(fn)``: ``fn(version=..., actor=...)`` runs inside the transaction that registers a
  version, so what it writes (a queued job, say) commits or rolls back with the version.
- ``on_inference(fn)``: ``fn(inference)`` runs after a paid inference is stored and returns the fields it adds to
  the answer (``{"receipt": ...}``). The call is already paid: a subscriber reports its failures in those fields.
- ``on_version_page(fn)``: ``fn(request, version)`` returns an HTML panel for the version's page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest
from django.utils.safestring import SafeString, mark_safe

from accounts.models import User
from models_factory.models import Inference, ModelVersion

log = logging.getLogger(__name__)

VersionRegistered = Callable[..., Any]
InferenceDone = Callable[[Inference], dict[str, Any]]
VersionPanel = Callable[[HttpRequest, ModelVersion], str]

_version_registered: list[VersionRegistered] = []
_inference_done: list[InferenceDone] = []
_version_panels: list[VersionPanel] = []


def _subscribe(subscribers: list[Any], fn: Any) -> None:
    if fn not in subscribers:  # ready() may run more than once in one process
        subscribers.append(fn)


def on_version_registered(fn: VersionRegistered) -> None:
    _subscribe(_version_registered, fn)


def on_inference(fn: InferenceDone) -> None:
    _subscribe(_inference_done, fn)


def on_version_page(fn: VersionPanel) -> None:
    _subscribe(_version_panels, fn)


def version_registered(*, version: ModelVersion, actor: User | None) -> None:
    for fn in _version_registered:
        fn(version=version, actor=actor)


def inference_done(inference: Inference) -> dict[str, Any]:
    """The fields the subscribers add to the answer of a paid call. A subscriber that raises is logged and skipped:
    the consumer has paid and gets the output."""
    fields: dict[str, Any] = {}
    for fn in _inference_done:
        try:
            fields.update(fn(inference))
        except Exception:
            log.exception("%s failed after inference %s", getattr(fn, "__qualname__", fn), inference.pk)
    return fields


def version_panels(request: HttpRequest, version: ModelVersion) -> list[SafeString]:
    return [mark_safe(fn(request, version)) for fn in _version_panels]
