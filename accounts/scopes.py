"""What an API token may do. A token carries scopes; each API request needs one, named by its view or derived here.

read: every GET. contribute: Datanet, upload, snapshot and reward writes. review: curator votes. train: models,
training runs and deployment. infer: paid inference. Minting tokens and linking a wallet need a browser session with
the password, never a token (a stolen token must not be able to mint another or re-point the rewards).
"""

from __future__ import annotations

from typing import Any

SCOPES: dict[str, str] = {
    "read": "read everything you can see",
    "contribute": "create Datanets, upload, publish snapshots, fund pools and claim rewards",
    "review": "vote on records as a curator",
    "train": "create models, start training runs, deploy versions",
    "infer": "call deployed models (spends credits)",
}
ALL_SCOPES = list(SCOPES)
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
_ACTION_SCOPES = {"votes": "review", "infer": "infer"}
_TRAIN_VIEWS = {"MLModelViewSet", "TrainingRunViewSet", "ModelVersionViewSet"}


def all_scopes() -> list[str]:
    return list(ALL_SCOPES)


def required_scope(view: Any, method: str) -> str:
    """The scope a token needs for ``method`` on ``view``: the view's ``token_scope`` if it names one, else read for
    safe methods, review for votes, infer for inference, train for the Model Factory, contribute for other writes."""
    explicit = getattr(view, "token_scope", None)
    if explicit:
        return explicit
    if method.upper() in SAFE_METHODS:
        return "read"
    action = getattr(view, "action", None)
    if action in _ACTION_SCOPES:
        return _ACTION_SCOPES[action]
    if type(view).__name__ in _TRAIN_VIEWS:
        return "train"
    return "contribute"


def clean_scopes(scopes: list[str] | None) -> list[str]:
    if scopes is None:
        return all_scopes()
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValueError(f"Unknown token scope {', '.join(unknown)}: choose from {', '.join(SCOPES)}.")
    if not scopes:
        raise ValueError("Give the token at least one scope, for example read.")
    return [s for s in ALL_SCOPES if s in scopes]
