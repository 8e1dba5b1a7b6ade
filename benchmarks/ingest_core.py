"""Throughput of the ingest core on a generated JSON Lines file, with datasketch's MinHash as the reference.

    .venv/bin/python benchmarks/ingest_core.py [--records 200000] [--reference 5000]

Measures, on one core: parse + validate + content hash (records/s and MB/s); MinHash signatures (records/s) next to
datasketch.MinHash per record (update_batch, its fastest per-record path) as a ratio; LSH band keys; the snapshot
Merkle root. Figures go to stdout and benchmarks/out/ingest_core.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import datasketch
import numpy as np
import pyarrow

from core.canonical import content_hash
from datanets.ingest.manifest import merkle_root_sha256
from datanets.ingest.neardup import (
    RECALL_WEIGHTS,
    MinHasher,
    band_keys,
    lsh_params,
    word_shingles,
)
from datanets.ingest.parsers import iter_rows
from datanets.ingest.schema import validate_record


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


class Timer:
    """Wall and CPU seconds: on a shared machine the CPU figure is the one that says what the code costs."""

    def __enter__(self) -> Self:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def rates(self, n: int) -> str:
        return f"{n / self.wall:,.0f} records/s wall ({n / self.cpu:,.0f} per CPU-second)"


def generate(path: Path, n: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    vocabulary = [f"{rng.choice('bcdfghklmnprst')}{rng.choice('aeiou')}{i}" for i in range(20_000)]
    labels = ["negative", "neutral", "positive"]
    with path.open("w", encoding="utf-8") as out:
        for _ in range(n):
            words = rng.choices(vocabulary, k=rng.randint(30, 50))
            out.write(json.dumps({"text": " ".join(words), "label": rng.choice(labels)}) + "\n")


def bench_parse(path: Path) -> tuple[list[str], list[str], Timer]:
    texts: list[str] = []
    hashes: list[str] = []
    with Timer() as timer:
        rows = iter_rows(
            path,
            filename=path.name,
            kind="labeled_text",
            max_expanded_bytes=1 << 34,
            max_line_bytes=1 << 20,
        )
        for row in rows:
            record = validate_record(
                row.data,
                kind="labeled_text",
                labels=["negative", "neutral", "positive"],
            )
            hashes.append(content_hash(record))
            texts.append(record["text"])
    return texts, hashes, timer


def bench_minhash(texts: list[str], batch: int = 10_000) -> tuple[np.ndarray, Timer]:
    hasher = MinHasher(num_perm=128, ngram=3, seed=1)
    with Timer() as timer:
        signatures = np.concatenate([hasher.signatures(texts[i : i + batch]) for i in range(0, len(texts), batch)])
    return signatures, timer


def bench_datasketch(texts: list[str]) -> Timer:
    with Timer() as timer:
        for text in texts:
            reference = datasketch.MinHash(num_perm=128, seed=1)
            reference.update_batch([" ".join(shingle).encode() for shingle in word_shingles(text, 3)])
    return timer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--reference", type=int, default=5_000, help="records hashed with datasketch")
    args = parser.parse_args()

    figures: dict[str, object] = {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pyarrow": pyarrow.__version__,
        "datasketch": datasketch.__version__,
        "records": args.records,
    }
    print(f"machine: {figures['platform']}; {figures['cpu']}; {figures['cores']} cores; Python {figures['python']}")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "records.jsonl"
        generate(path, args.records)
        size = path.stat().st_size
        texts, hashes, parse = bench_parse(path)
    n = len(texts)
    figures["file_mb"] = round(size / 1e6, 1)
    figures["parse_validate_hash"] = {
        "records_per_s": round(n / parse.wall),
        "records_per_cpu_s": round(n / parse.cpu),
    }
    print(
        f"parse + validate + hash: {n:,} records ({size / 1e6:.1f} MB, {size / 1e6 / parse.wall:.1f} MB/s): "
        f"{parse.rates(n)}"
    )

    signatures, ours = bench_minhash(texts)
    sample = texts[: args.reference]
    reference = bench_datasketch(sample)
    ratio_wall = (n / ours.wall) / (len(sample) / reference.wall)
    ratio_cpu = (n / ours.cpu) / (len(sample) / reference.cpu)
    figures["minhash"] = {
        "records_per_s": round(n / ours.wall),
        "records_per_cpu_s": round(n / ours.cpu),
    }
    figures["datasketch_minhash"] = {
        "records": len(sample),
        "records_per_s": round(len(sample) / reference.wall),
        "records_per_cpu_s": round(len(sample) / reference.cpu),
    }
    figures["minhash_speedup_vs_datasketch"] = {
        "wall": round(ratio_wall, 1),
        "cpu": round(ratio_cpu, 1),
    }
    print(f"MinHash, 128 perms, word 3-grams: {ours.rates(n)}")
    print(f"datasketch.MinHash per record ({len(sample):,} records): {reference.rates(len(sample))}")
    print(f"ratio: {ratio_wall:.1f}x wall, {ratio_cpu:.1f}x CPU")

    bands, rows = lsh_params(0.8, 128, *RECALL_WEIGHTS)
    with Timer() as keys:
        band_keys(signatures, bands, rows)
    figures["band_keys_records_per_s"] = round(n / keys.wall)
    print(f"LSH band keys ({bands} bands x {rows} rows, threshold 0.8): {keys.rates(n)}")

    with Timer() as merkle:
        merkle_root_sha256(sorted(hashes))
    figures["merkle_root_s"] = round(merkle.wall, 3)
    print(f"Merkle root of {n:,} record hashes (sorted first): {merkle.wall:.3f} s wall, {merkle.cpu:.3f} s CPU")

    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ingest_core.json").write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
