"""How a fee or a pool splits into integer token amounts: pure arithmetic, no Django (property-tested in
``tests/test_splits.py`` and usable from benchmarks alone).

Units: a contributor's part of a receipt is ``share_ppm`` (parts per million of the contributors' part); every
amount is in token base units (``amount_units``). Rounding always goes down, and the platform takes what rounding
leaves, so every unit in is accounted for exactly once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

PPM = 1_000_000
BPS = 10_000


class HasBps(Protocol):
    platform_bps: int
    builder_bps: int
    curators_bps: int
    contributors_bps: int


@dataclass(frozen=True)
class Bps:
    """A fee split in basis points (sum 10,000); defaults 0.10/0.20/0.10/0.60 (DESIGN.md, Rewards)."""

    platform: int = 1_000
    builder: int = 2_000
    curators: int = 1_000
    contributors: int = 6_000

    @classmethod
    def of(cls, policy: HasBps | None) -> Bps:
        if policy is None:
            return cls()
        return cls(policy.platform_bps, policy.builder_bps, policy.curators_bps, policy.contributors_bps)


@dataclass
class FeeSplit:
    """One fee split into amounts in token base units; ``contributors`` maps a contributor to its amount."""

    platform: int
    builder: int
    curators: int
    contributors: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.platform + self.builder + self.curators + sum(self.contributors.values())


def contributor_amount_units(contributors_part: int, share_ppm: int) -> int:
    """A contributor's amount of the contributors' part of a fee, from its ``share_ppm`` (rounded down)."""
    return contributors_part * int(share_ppm) // PPM


def split_fee(fee: int, bps: Bps, shares: Iterable[Mapping[str, Any]]) -> FeeSplit:
    """Split ``fee`` base units: builder, curators and each contributor round down, the platform takes the rest.

    ``shares`` are a receipt's contributor shares: ``{"contributor": ..., "share_ppm": ...}`` summing to 1,000,000
    (or empty: then the contributors' part goes to the platform)."""
    if fee < 0:
        raise ValueError("a fee cannot be negative")
    if bps.platform + bps.builder + bps.curators + bps.contributors != BPS:
        raise ValueError("basis points must sum to 10,000")
    builder = fee * bps.builder // BPS
    curators = fee * bps.curators // BPS
    contributors_part = fee * bps.contributors // BPS
    paid: dict[str, int] = defaultdict(int)
    shares = list(shares)
    if sum(int(s["share_ppm"]) for s in shares) not in (0, PPM):
        raise ValueError("receipt shares must sum to 1,000,000 ppm")
    for share in shares:
        amount = contributor_amount_units(contributors_part, share["share_ppm"])
        if amount:
            paid[str(share["contributor"])] += amount
    platform = fee - builder - curators - sum(paid.values())
    return FeeSplit(platform=platform, builder=builder, curators=curators, contributors=dict(paid))


def split_pro_rata(amount: int, weights: Mapping[Any, int]) -> tuple[dict[Any, int], int]:
    """``amount`` split by positive integer weights, rounded down; returns (amounts per key, remainder)."""
    positive = {k: int(w) for k, w in weights.items() if int(w) > 0}
    total = sum(positive.values())
    if amount <= 0 or total == 0:
        return {}, max(amount, 0)
    amounts = {k: amount * w // total for k, w in positive.items()}
    amounts = {k: v for k, v in amounts.items() if v}
    return amounts, amount - sum(amounts.values())
