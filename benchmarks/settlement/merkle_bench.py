"""Merkle tree build and proof generation at 10k, 100k and 1M accounts, beside a plain per-leaf Python loop and
the JavaScript library itself (10k and 100k, when node and settlement/contracts/node_modules are there).

Each build is timed twice: as the machine is ("as is", with the load average beside it) and "loaded", with
``--load`` extra busy processes (default 2: one per core of this machine) spinning for the whole build, so the
figure with the machine busy is reproducible rather than whatever the neighbours happen to run.

    .venv/bin/python -m benchmarks.settlement.merkle_bench [--sizes 10000,100000,1000000] [--no-reference] [--load 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from eth_abi import encode
from eth_hash.auto import keccak

from benchmarks.settlement.machine import describe
from settlement import merkle
from settlement.merkle import StandardMerkleTree

CONTRACTS = Path(__file__).resolve().parents[2] / "settlement" / "contracts"


def accounts(n: int, seed: int = 1) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    return [("0x" + rng.randbytes(20).hex(), rng.randrange(10**18, 10**24)) for _ in range(n)]


def reference_root(values: list[tuple[str, int]]) -> str:
    """The obvious per-leaf loop (eth_abi + eth_hash), for the ratio."""
    leaves = sorted(keccak(keccak(encode(["address", "uint256"], [a, v]))) for a, v in values)
    tree: list[bytes] = [b""] * (2 * len(leaves) - 1)
    for i, leaf in enumerate(leaves):
        tree[len(tree) - 1 - i] = leaf
    for i in range(len(tree) - 1 - len(leaves), -1, -1):
        a, b = tree[2 * i + 1], tree[2 * i + 2]
        tree[i] = keccak(a + b if a <= b else b + a)
    return "0x" + tree[0].hex()


def js_bench(n: int) -> dict[str, float] | None:
    node = shutil.which("node")
    if node is None or not (CONTRACTS / "node_modules" / "@openzeppelin" / "merkle-tree").is_dir():
        return None
    out = subprocess.run(
        [node, str(CONTRACTS / "scripts" / "merkle.mjs")],
        input=json.dumps({"op": "bench", "n": n}),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


@contextmanager
def busy(processes: int) -> Iterator[None]:
    """``processes`` CPU-bound busy loops for the duration of the block (ended by their ids)."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        time.sleep(0.5)
        yield
    finally:
        for p in spinners:
            p.kill()
            p.wait()


def timed_build(values: list[tuple[str, int]], repeats: int) -> tuple[float, float, StandardMerkleTree]:
    """Best wall seconds and the CPU seconds (all threads) of that build."""
    best, cpu = float("inf"), 0.0
    tree = None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        tree = StandardMerkleTree.of(values, ["address", "uint256"])
        wall = time.perf_counter() - start
        if wall < best:
            best, cpu = wall, time.process_time() - start_cpu
    assert tree is not None
    return best, cpu, tree


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--no-reference", action="store_true", help="skip the slow per-leaf loop")
    parser.add_argument("--no-js", action="store_true")
    parser.add_argument("--load", type=int, default=2, help="busy processes during the loaded build")
    parser.add_argument("--repeats", type=int, default=3, help="builds per figure; the best is reported")
    args = parser.parse_args()

    print(describe())
    print(f"keccak backend: {merkle.BACKEND}")
    start = time.perf_counter()
    StandardMerkleTree.of([("0x" + "11" * 20, 1), ("0x" + "22" * 20, 2)], ["address", "uint256"])
    print(f"first tree in this process (JIT compile or cache load): {time.perf_counter() - start:.2f} s\n")
    print(f"threads: {merkle._THREADS}; loaded = {args.load} extra busy processes on {os.cpu_count()} cores\n")
    print(
        f"{'accounts':>10} {'build s':>9} {'CPU s':>7} {'load avg':>9} {'loaded s':>9} {'proof µs':>9} {'loop s':>8} "
        f"{'× faster':>9} {'JS build s':>11} {'JS proof µs':>12}"
    )
    for n in [int(s) for s in args.sizes.split(",")]:
        values = accounts(n)
        load_avg = os.getloadavg()[0]
        build, cpu, tree = timed_build(values, args.repeats)
        with busy(args.load):
            loaded, _, _ = timed_build(values, args.repeats)
        picks = random.Random(2).sample(range(n), min(n, 1000))
        start = time.perf_counter()
        for i in picks:
            tree.get_proof(i)
        proof_us = (time.perf_counter() - start) / len(picks) * 1e6
        loop = ratio = "-"
        if not args.no_reference:
            start = time.perf_counter()
            root = reference_root(values)
            elapsed = time.perf_counter() - start
            assert root == tree.root, "the per-leaf loop disagrees"
            loop, ratio = f"{elapsed:.2f}", f"{elapsed / build:.0f}"
        js_build = js_proof = "-"
        if not args.no_js and n <= 100_000:
            js = js_bench(n)
            if js is not None:
                js_build, js_proof = f"{js['build_s']:.2f}", f"{js['proof_us']:.0f}"
        print(
            f"{n:>10,} {build:>9.3f} {cpu:>7.2f} {load_avg:>9.1f} {loaded:>9.3f} {proof_us:>9.0f} {loop:>8} {ratio:>9} "
            f"{js_build:>11} {js_proof:>12}"
        )


if __name__ == "__main__":
    main()
