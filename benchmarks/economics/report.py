"""Returns per strategy, the table, and the charts (SVG written by hand: matplotlib is not in the venv)."""

from __future__ import annotations

import html
import statistics
from dataclasses import dataclass
from pathlib import Path

from benchmarks.economics.agents import Agent
from benchmarks.economics.sim import SeedResult

PAID_KINDS = ("contributor", "curator", "builder", "pool")
STRATEGY_ORDER = (
    "honest",
    "exact_dup",
    "near_dup",
    "paraphrase",
    "junk",
    "mislabel",
    "sybil_ring",
    "self_query",
    "self_query_queries_only",
    "colluding_curators",
    "bad_builder",
    "honest_curator",
)
FARMING = set(STRATEGY_ORDER) - {"honest", "honest_curator"}


def earned(agent: Agent, result: SeedResult) -> float:
    return sum(result.earnings.get(a, {}).get(k, 0.0) for a in agent.accounts for k in PAID_KINDS)


def withheld(agent: Agent, result: SeedResult) -> float:
    return sum(result.earnings.get(a, {}).get("withheld", 0.0) for a in agent.accounts)


def earned_by_kind(results: list[SeedResult]) -> dict[str, dict[str, float]]:
    """Mean credits per seed each strategy was paid, by ledger kind (withheld pool shares shown apart)."""
    out: dict[str, dict[str, float]] = {}
    for result in results:
        for agent in result.agents:
            kinds = out.setdefault(agent.strategy, {})
            for account in agent.accounts:
                for kind, amount in result.earnings.get(account, {}).items():
                    kinds[kind] = kinds.get(kind, 0.0) + amount / len(results)
    return {k: out[k] for k in STRATEGY_ORDER if k in out}


def kinds_table(kinds: dict[str, dict[str, float]]) -> str:
    cols = (*PAID_KINDS, "withheld")
    lines = [f"{'paid by kind (mean/seed)':<26}" + "".join(f"{c:>12}" for c in cols)]
    for strategy, by_kind in kinds.items():
        lines.append(f"{strategy:<26}" + "".join(f"{by_kind.get(c, 0.0):>12.2f}" for c in cols))
    return "\n".join(lines)


@dataclass
class Row:
    strategy: str
    returns: list[float]  # return on cost per seed
    earned: list[float]
    spent: list[float]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.returns)

    @property
    def worst(self) -> float:
        """The seed best for the strategy: the worst case for the platform."""
        return max(self.returns)


def returns_by_strategy(results: list[SeedResult]) -> dict[str, Row]:
    rows: dict[str, Row] = {}
    for result in results:
        sums: dict[str, tuple[float, float]] = {}
        for agent in result.agents:
            e, s = sums.get(agent.strategy, (0.0, 0.0))
            sums[agent.strategy] = (e + earned(agent, result), s + agent.spent())
        paid = result.notes["self_query_paid"]
        sums["self_query_queries_only"] = (result.notes["self_query_earned_from_own_receipts"], paid)
        for strategy, (e, s) in sums.items():
            row = rows.setdefault(strategy, Row(strategy, [], [], []))
            row.returns.append((e - s) / s if s else 0.0)
            row.earned.append(e)
            row.spent.append(s)
    return {k: rows[k] for k in STRATEGY_ORDER if k in rows}


def honest_share_by_quality(results: list[SeedResult]) -> list[tuple[float, float, float]]:
    """(quality = 1 - label noise, mean share of all contributor payouts, mean return on cost) per honest agent."""
    out: dict[float, list[tuple[float, float]]] = {}
    for result in results:
        total = sum(
            v.get("contributor", 0.0) + v.get("pool", 0.0) for v in result.earnings.values()
        )  # everything paid to contributors
        for agent in result.agents:
            if agent.strategy != "honest":
                continue
            e = earned(agent, result)
            out.setdefault(round(1 - agent.noise, 4), []).append(
                (e / total if total else 0.0, (e - agent.spent()) / agent.spent())
            )
    return [(q, statistics.fmean(s for s, _ in v), statistics.fmean(r for _, r in v)) for q, v in sorted(out.items())]


def table(rows: dict[str, Row]) -> str:
    lines = [
        f"{'strategy':<26}{'return mean':>12}{'worst seed':>12}{'earned':>10}{'spent':>10}  verdict",
        "-" * 84,
    ]
    for strategy, row in rows.items():
        verdict = ""
        if strategy in FARMING:
            verdict = "PAYS (mean > 0)" if row.mean > 0 else ("pays on some seed" if row.worst > 0 else "loses")
        lines.append(
            f"{strategy:<26}{row.mean:>+12.2f}{row.worst:>+12.2f}{statistics.fmean(row.earned):>10.2f}"
            f"{statistics.fmean(row.spent):>10.2f}  {verdict}"
        )
    return "\n".join(lines)


# ---- SVG ----------------------------------------------------------------------------------------------------

W, H, PAD = 480, 300, 50


def _svg(title: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
        'font-family="sans-serif" font-size="11">'
        f'<rect width="{W}" height="{H}" fill="white"/>'
        f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="13">{html.escape(title)}</text>'
        + "".join(body)
        + "</svg>\n"
    )


def _scale(lo: float, hi: float, a: float, b: float):  # noqa: ANN202
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def bars_svg(title: str, labels: list[str], values: list[float], ylabel: str) -> str:
    lo, hi = min(0.0, *values), max(0.0, *values)
    pad = 0.1 * ((hi - lo) or 1.0)
    lo, hi = lo - pad, hi + pad
    y = _scale(lo, hi, H - PAD, PAD)
    n = max(1, len(values))
    bw = (W - 2 * PAD) / n
    body = [f'<line x1="{PAD}" x2="{W - PAD}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="black"/>']
    body.append(f'<text x="12" y="{H / 2}" transform="rotate(-90 12 {H / 2})" text-anchor="middle">{ylabel}</text>')
    for tick in (lo, 0.0, hi):
        body.append(f'<text x="{PAD - 4}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:+.2f}</text>')
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        x = PAD + i * bw + bw * 0.15
        top, bottom = sorted((y(v), y(0)))
        color = "#c0392b" if v > 0 else "#2e86c1"
        body.append(
            f'<rect x="{x:.1f}" y="{top:.1f}" width="{bw * 0.7:.1f}" height="{bottom - top:.1f}" fill="{color}"/>'
        )
        body.append(
            f'<text x="{x + bw * 0.35:.1f}" y="{H - PAD + 16}" text-anchor="middle">{html.escape(label)}</text>'
        )
        body.append(f'<text x="{x + bw * 0.35:.1f}" y="{top - 3:.1f}" text-anchor="middle">{v:+.2f}</text>')
    return _svg(title, body)


def line_svg(title: str, points: list[tuple[float, float]], xlabel: str, ylabel: str) -> str:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x = _scale(min(xs), max(xs), PAD, W - PAD)
    y = _scale(0.0, max(ys) * 1.1 or 1.0, H - PAD, PAD)
    path = " ".join(f"{'M' if i == 0 else 'L'}{x(a):.1f},{y(b):.1f}" for i, (a, b) in enumerate(points))
    body = [
        f'<line x1="{PAD}" x2="{W - PAD}" y1="{H - PAD}" y2="{H - PAD}" stroke="black"/>',
        f'<line x1="{PAD}" x2="{PAD}" y1="{PAD}" y2="{H - PAD}" stroke="black"/>',
        f'<path d="{path}" fill="none" stroke="#2e86c1" stroke-width="2"/>',
        f'<text x="{W / 2}" y="{H - 12}" text-anchor="middle">{xlabel}</text>',
        f'<text x="12" y="{H / 2}" transform="rotate(-90 12 {H / 2})" text-anchor="middle">{ylabel}</text>',
    ]
    for a, b in points:
        body.append(f'<circle cx="{x(a):.1f}" cy="{y(b):.1f}" r="3" fill="#2e86c1"/>')
        body.append(f'<text x="{x(a):.1f}" y="{H - PAD + 14}" text-anchor="middle">{a:.2f}</text>')
        body.append(f'<text x="{x(a):.1f}" y="{y(b) - 6:.1f}" text-anchor="middle">{b:.3f}</text>')
    return _svg(title, body)


def write_charts(
    out: Path, rows: dict[str, Row], share: list[tuple[float, float, float]], seeds: list[int]
) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for strategy, row in rows.items():
        path = out / f"{strategy}.svg"
        labels = [f"seed {s}" for s in seeds] + ["mean"]
        path.write_text(
            bars_svg(f"{strategy}: return on cost", labels, [*row.returns, row.mean], "return on cost"),
            encoding="utf-8",
        )
        written.append(path)
    path = out / "honest_share_vs_quality.svg"
    path.write_text(
        line_svg(
            "Honest contributors: share of contributor payouts vs quality",
            [(q, s) for q, s, _ in share],
            "quality (1 - label noise)",
            "share of contributor payouts",
        ),
        encoding="utf-8",
    )
    written.append(path)
    return written
