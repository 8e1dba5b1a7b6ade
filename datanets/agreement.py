"""Agreement between curators, and between a curator and final outcomes: plain arithmetic, no Django.

- ``krippendorff_alpha_nominal``: Krippendorff's alpha for nominal values over units (records) rated by any
  number of coders (curators); units with fewer than two ratings carry no pairable information and are skipped.
- ``smoothed_kappa``: Cohen's kappa between a curator's votes and the outcomes, with half a pseudo-count in each
  cell of the 2x2 table, so it is defined for every curator, shrinks to 0 with little evidence, and is about 0 for
  a curator who approves everything (their agreement is what chance gives).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Sequence


def krippendorff_alpha_nominal(units: Iterable[Sequence[Hashable]]) -> float | None:
    """Alpha for nominal data; ``None`` when no unit has two ratings or every rating is the same value (the
    expected disagreement is zero, so alpha is undefined)."""
    coincidence: Counter[tuple[Hashable, Hashable]] = Counter()
    for values in units:
        m = len(values)
        if m < 2:
            continue
        counts = Counter(values)
        for c, n_c in counts.items():
            for k, n_k in counts.items():
                pairs = n_c * (n_c - 1) if c == k else n_c * n_k
                coincidence[(c, k)] += pairs / (m - 1)
    totals: Counter[Hashable] = Counter()
    for (c, _k), o in coincidence.items():
        totals[c] += o
    n = sum(totals.values())
    if n <= 1:
        return None
    observed = sum(o for (c, k), o in coincidence.items() if c != k) / n
    expected = sum(totals[c] * totals[k] for c in totals for k in totals if c != k) / (n * (n - 1))
    if expected == 0:
        return None
    return 1.0 - observed / expected


def smoothed_kappa(pairs: Iterable[tuple[bool, bool]], pseudo: float = 0.5) -> float:
    """Cohen's kappa of (vote says yes, outcome is yes) pairs, with ``pseudo`` added to each cell."""
    cells = Counter(pairs)
    yy = cells[(True, True)] + pseudo
    yn = cells[(True, False)] + pseudo
    ny = cells[(False, True)] + pseudo
    nn = cells[(False, False)] + pseudo
    total = yy + yn + ny + nn
    observed = (yy + nn) / total
    vote_yes, outcome_yes = (yy + yn) / total, (yy + ny) / total
    expected = vote_yes * outcome_yes + (1 - vote_yes) * (1 - outcome_yes)
    return (observed - expected) / (1 - expected)
