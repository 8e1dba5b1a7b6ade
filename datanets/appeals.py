"""Kinds of decisions a party may appeal, registered by the app that owns each decision.

An ``Appeal`` names its decision by kind and id. Each kind says, from its id, which Datanet it belongs to, who may
appeal it, who made it (they never judge the appeal) and how to undo it when the appeal is overturned. Datanets
registers ``rejection``; the apps to the right register theirs in ``AppConfig.ready()`` (``flag`` in attribution,
``penalty`` in settlement), so this app never imports them. ``on_overturned`` lets another app react too (the
rewards app removes the penalties of an overturned flag).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from accounts.models import User
    from datanets.models import Appeal, Datanet


@dataclass(frozen=True)
class AppealTarget:
    """One appealable decision, as its kind describes it."""

    datanet: Datanet
    party_id: int
    decided_by: list[int]
    summary: str
    url: str = ""
    record_id: int | None = None


@dataclass(frozen=True)
class AppealKind:
    name: str
    label: str
    # The decision with this id, or None when there is none that can be appealed (say why in ``refusal``).
    target: Callable[[str], AppealTarget | None]
    # Undo the decision (the caller holds the transaction); returns what changed, for the audit row.
    overturn: Callable[[Appeal, User | None], dict[str, Any]]
    refusal: str = "There is no such decision to appeal."
    listeners: list[Callable[[Appeal, User | None], None]] = field(default_factory=list)


_KINDS: dict[str, AppealKind] = {}


def register(
    kind: str,
    *,
    label: str,
    target: Callable[[str], AppealTarget | None],
    overturn: Callable[[Appeal, User | None], dict[str, Any]],
    refusal: str = "There is no such decision to appeal.",
) -> None:
    """Make ``kind`` appealable. Call it from ``AppConfig.ready()``."""
    known = _KINDS.get(kind)
    if known is not None and (known.target is not target or known.overturn is not overturn):
        raise ValueError(f"appeal kind {kind!r} is already registered")
    _KINDS[kind] = AppealKind(kind, label, target, overturn, refusal, known.listeners if known else [])


def on_overturned(kind: str, handler: Callable[[Appeal, User | None], None]) -> None:
    """Also call ``handler(appeal, actor)`` (inside the deciding transaction) when an appeal of ``kind`` is
    overturned."""
    registered = kind_for(kind)
    if handler not in registered.listeners:
        registered.listeners.append(handler)


def kind_for(kind: str) -> AppealKind:
    try:
        return _KINDS[kind]
    except KeyError:
        known = ", ".join(sorted(_KINDS)) or "none"
        raise LookupError(f"{kind!r} is not a kind of decision that can be appealed; known kinds: {known}") from None


def kinds() -> dict[str, AppealKind]:
    return dict(_KINDS)
