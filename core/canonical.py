"""Canonical JSON and content hashes: the bytes that get hashed must not depend on key order or whitespace."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8 without escaping; NaN and infinity are refused (they are not JSON)."""
    try:
        text = json.dumps(
            obj,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
    except ValueError as exc:
        raise ValueError(f"cannot make canonical JSON: {exc}") from exc
    # surrogatepass is deliberately not used: a lone surrogate cannot be stored or hashed portably.
    return text.encode("utf-8")


def content_hash(obj: Any) -> str:
    """Hex SHA-256 of the canonical JSON of `obj`."""
    return hashlib.sha256(canonical_json(obj)).hexdigest()
