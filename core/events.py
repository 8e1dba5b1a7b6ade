"""Platform events that outsiders can watch (webhooks): apps emit them, a later app delivers them.

The app that delivers (``watch``) subscribes from its ``AppConfig.ready()``; the services where things happen call
``event_emit`` inside their transaction, and subscribers run only after it commits (``transaction.on_commit``), so
a rolled-back decision is never announced. This module sits in ``core`` so every app can emit without importing the
app that delivers.

Payloads carry ids, hashes, statuses and amounts, never a consumer's input or output, nor a record's text: a
webhook goes to a URL outside the platform.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction

log = logging.getLogger(__name__)

EVENT_TYPES: dict[str, str] = {
    "record.resolved": "a record reached its quorum (approved or rejected)",
    "appeal.decided": "an appeal was upheld or overturned",
    "snapshot.published": "a Datanet published a new snapshot (version and root)",
    "run.finished": "a training run succeeded, failed or was cancelled",
    "receipt.completed": "an inference's attribution receipt was written",
    "epoch.settled": "a reward epoch's Merkle root was anchored on chain and confirmed",
    "proposal.executed": "a Datanet governance proposal took effect",
}


@dataclass(frozen=True)
class Event:
    """``datanet_id``: the Datanet it belongs to (its owner's endpoints hear it); ``user_ids``: the accounts it is
    about (their own endpoints hear it); ``public``: every personal endpoint may hear it (an anchored epoch)."""

    type: str
    data: dict[str, Any]
    datanet_id: int | None = None
    user_ids: tuple[int, ...] = ()
    public: bool = False


Subscriber = Callable[[Event], None]
_subscribers: list[Subscriber] = []


def on_event(fn: Subscriber) -> None:
    if fn not in _subscribers:  # ready() may run more than once in one process
        _subscribers.append(fn)


def event_emit(
    type: str,
    *,
    data: dict[str, Any],
    datanet_id: int | None = None,
    user_ids: tuple[int, ...] | list[int] = (),
    public: bool = False,
) -> None:
    """Announce an event once the current transaction commits (at once outside one). A subscriber that fails is
    logged and skipped: the decision it announces has already been made."""
    if type not in EVENT_TYPES:
        raise ValueError(f"Unknown event type {type!r}; known ones are {', '.join(EVENT_TYPES)}.")
    event = Event(type=type, data=data, datanet_id=datanet_id, user_ids=tuple(sorted(set(user_ids))), public=public)

    def deliver() -> None:
        for fn in list(_subscribers):
            try:
                fn(event)
            except Exception:
                log.exception("event subscriber %s failed on %s", getattr(fn, "__qualname__", fn), type)

    transaction.on_commit(deliver)
