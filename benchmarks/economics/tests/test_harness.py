"""The economics harness runs end to end at its tiny size: one command prints the table with every strategy and
writes the charts. It checks the harness, not whether farming pays (the default run reports that)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.economics.report import STRATEGY_ORDER

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.slow


def test_one_tiny_seed_prints_every_strategy_and_writes_the_charts(tmp_path: Path) -> None:
    out = tmp_path / "charts"
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL"}}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.economics.run", "--seeds", "1", "--size", "tiny", "--out", str(out)],
        cwd=ROOT,
        env={**env, "OMP_NUM_THREADS": "2"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    table = done.stdout.split("\nstrategy", 1)[1].split("\n\n", 1)[0]  # up to the first blank line
    printed = {line.split()[0] for line in table.splitlines()[2:]}
    assert printed == set(STRATEGY_ORDER)
    assert "Machine:" in done.stdout and "honest quality" in done.stdout
    charts = {p.name for p in out.glob("*.svg")}
    assert charts == {f"{s}.svg" for s in STRATEGY_ORDER} | {"honest_share_vs_quality.svg"}
    for chart in out.glob("*.svg"):
        assert chart.read_text().startswith("<svg") and chart.read_text().rstrip().endswith("</svg>")
    results = json.loads((out / "results.json").read_text())
    assert set(results["strategies"]) == set(STRATEGY_ORDER)
