"""Seeded draws weighted by standing, without replacement: plain arithmetic, no Django, so anyone holding the
recorded seed and weights replays the same draw."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence


def draw_seed(*parts: object) -> int:
    """A 63-bit seed from what identifies the draw (so it fits a signed 64-bit database column)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def weighted_draw(candidates: Sequence[tuple[int, float]], n: int, seed: int) -> list[tuple[int, float]]:
    """``n`` of ``(id, weight)`` candidates, weight > 0, drawn without replacement with probability proportional
    to weight (Efraimidis-Spirakis keys ``u ** (1 / w)``); candidates are sorted by id first, so order in is moot."""
    rng = random.Random(seed)
    keyed = []
    for cid, weight in sorted(candidates):
        if weight <= 0:
            continue
        keyed.append((rng.random() ** (1.0 / weight), cid, weight))
    keyed.sort(reverse=True)
    return [(cid, weight) for _, cid, weight in keyed[:n]]
