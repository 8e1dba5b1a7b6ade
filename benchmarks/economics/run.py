"""The adversarial economics simulation, from one command:

    python -m benchmarks.economics.run --seeds 3          (or: make economics)

Runs every farming strategy against the real services on a private SQLite database (a temporary folder, the test
suite's settings), prints each strategy's return on cost (mean and worst seed), honest contributors' share against
their data quality and the machine, and writes one SVG chart per strategy and one of share vs quality to
var/economics/ (or --out). --size tiny is the test's size (about a minute).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="how many seeds (worlds) to run (default 3)")
    parser.add_argument("--size", choices=("default", "tiny"), default="default")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "economics", help="where the charts go")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.path.insert(0, str(ROOT))

    from benchmarks.economics import agents, platform, report, sim
    from benchmarks.settlement.machine import describe

    logging.disable(logging.WARNING)  # the services log each expected refusal; the table is the output
    size = agents.SIZES[args.size]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="datanets-economics-") as tmp:
        var = Path(tmp)
        platform.boot(var)
        results = []
        seeds = list(range(args.seeds))
        for seed in seeds:
            platform.reset(var)
            t0 = time.perf_counter()
            results.append(sim.run_seed(seed, size, log=lambda m: print(m, flush=True)))
            print(f"  seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
    rows = report.returns_by_strategy(results)
    share = report.honest_share_by_quality(results)
    print()
    print(f"Economics simulation: {args.seeds} seed(s), size {args.size} ({size})")
    print(f"Machine: {describe()} (shared with other jobs: wall times are noisy)")
    print(
        "Return on cost = (credits earned - credits' worth spent) / spent; worst seed = the best seed for the strategy."
    )
    print()
    print(report.table(rows))
    print()
    kinds = report.earned_by_kind(results)
    print(report.kinds_table(kinds))
    print()
    print(f"{'honest quality':<16}{'share of contributor payouts':>30}{'return on cost':>16}")
    for q, s, r in share:
        print(f"{q:<16.2f}{s:>30.3f}{r:>+16.2f}")
    deciding = [d for r in results for d in r.notes["deciding_version"]]
    print()
    print(
        f"Pools and penalties were decided by the bad builder's version in {deciding.count('bad_builder')} of "
        f"{len(deciding)} epochs."
    )
    pairs = [p for r in results for p in r.notes["bad_builder_pool_weight_share"]]
    if pairs:
        print(
            "Bad builder's share of positive valuation (what the pool follows): "
            f"{statistics.fmean(a for a, _ in pairs):.3f} under its own version, "
            f"{statistics.fmean(b for _, b in pairs):.3f} under the owner's."
        )
    statuses: dict[str, dict[str, int]] = {}
    for r in results:
        for agent in r.agents:
            for account in agent.accounts:
                for status, n in r.status_counts.get(account, {}).items():
                    statuses.setdefault(agent.strategy, {}).setdefault(status, 0)
                    statuses[agent.strategy][status] += n
    print("Records by status, all seeds: " + json.dumps(statuses, sort_keys=True))
    written = report.write_charts(args.out, rows, share, seeds)
    (args.out / "results.json").write_text(
        json.dumps(
            {
                "seeds": args.seeds,
                "size": args.size,
                "strategies": {
                    k: {"returns": v.returns, "earned": v.earned, "spent": v.spent} for k, v in rows.items()
                },
                "honest_share_by_quality": share,
                "statuses": statuses,
                "earned_by_kind": kinds,
                "notes": [r.notes for r in results],
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    print(f"Charts: {len(written)} SVG files in {args.out}")
    print(f"Total wall time: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
