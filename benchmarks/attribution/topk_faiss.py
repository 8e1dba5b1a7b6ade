"""Top-k inner-product search at scale: ours before (numpy/torch exact scan, torch's private int8 kernel
``aten._weight_int8pack_mm``) against the faiss paths the engine uses now (flat inner product, int8 scalar quantizer
``QT_8bit`` with exact rerank, the same sharded over threads), side by side, k = 50, single queries.

Each approximate index is calibrated (candidate count doubled from 256) to recall@50 >= 0.95 against exact search on
32 calibration queries; recall is then reported on 32 other queries. Data: Gaussian rows (scores spread over every
direction, like preconditioned gradients) and, at 1M, projected preconditioned digits gradients. Rows at 10M are
built only with ``--large`` (about 7 GB of memory); without it the 10M figure is extrapolated linearly from the
largest size run (a scan is linear in rows), and the table says so.

Usage: OMP_NUM_THREADS=2 nice -n 10 python benchmarks/attribution/topk_faiss.py [--quick] [--large] [--threads N]
       [--sizes 100000,1000000,3000000] [--no-gradients]
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import digits  # noqa: E402
from speed import gradient_features, recall_at  # noqa: E402

from attribution.engine import SQ8Index, top_k_inner_product  # noqa: E402

K = 50


def before_exact(q: np.ndarray, features: np.ndarray, k: int, block_rows: int = 1 << 18) -> np.ndarray:
    """The engine's exact scan before faiss: numpy matrix-vector product per block, torch.topk."""
    best_s: torch.Tensor | None = None
    best_i: torch.Tensor | None = None
    for start in range(0, len(features), block_rows):
        scores = torch.from_numpy(features[start : start + block_rows] @ q[0]).unsqueeze(0)
        values, idx = torch.topk(scores, min(k, scores.shape[1]), dim=1)
        idx = idx + start
        if best_s is None or best_i is None:
            best_s, best_i = values, idx
        else:
            best_s, pick = torch.topk(torch.cat([best_s, values], 1), k, dim=1)
            best_i = torch.gather(torch.cat([best_i, idx], 1), 1, pick)
    assert best_i is not None
    return best_i.numpy()


class BeforeInt8:
    """The engine's approximate index before faiss: per-row int8 codes scanned with ``aten._weight_int8pack_mm``
    (bfloat16 queries, columns padded to 64), exact rerank of the best candidates."""

    available = hasattr(torch.ops.aten, "_weight_int8pack_mm")

    def __init__(self, features: np.ndarray) -> None:
        n, dim = features.shape
        self.features, self.dim, self.width = features, dim, -(-dim // 64) * 64
        codes = np.zeros((n, self.width), dtype=np.int8)
        peak = np.abs(features).max(axis=1)
        scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
        for s in range(0, n, 1 << 16):
            codes[s : s + (1 << 16), :dim] = np.rint(features[s : s + (1 << 16)] / scale[s : s + (1 << 16), None])
        self.codes, self.scales = torch.from_numpy(codes), torch.from_numpy(scale).to(torch.bfloat16)
        self.candidates = 1024

    def search(self, q: np.ndarray, k: int, candidates: int | None = None) -> np.ndarray:
        c = candidates or self.candidates
        padded = torch.zeros((len(q), self.width), dtype=torch.bfloat16)
        padded[:, : self.dim] = torch.from_numpy(q)
        cand = torch.topk(torch.ops.aten._weight_int8pack_mm(padded, self.codes, self.scales), c, dim=1).indices
        out = np.empty((len(q), k), dtype=np.int64)
        for row in range(len(q)):
            rows = np.sort(cand[row].numpy())
            exact = self.features[rows] @ q[row]
            out[row] = rows[np.argsort(-exact)[:k]]
        return out

    def calibrate(self, calib: np.ndarray, truth: np.ndarray) -> float:
        c = 256
        while True:
            recall = recall_at(self.search(calib, K, c), truth)
            if recall >= 0.95 or c >= len(self.features):
                self.candidates = c
                return recall
            c *= 2


def per_query_ms(fn: Callable[[np.ndarray], object], queries: np.ndarray) -> np.ndarray:
    fn(queries[:1])
    out = []
    for i in range(len(queries)):
        started = time.perf_counter()
        fn(queries[i : i + 1])
        out.append(time.perf_counter() - started)
    return np.array(out) * 1e3


def rows_for(data: str, features: np.ndarray, queries: np.ndarray, calib: np.ndarray, threads: int) -> list[dict]:
    n, dim = features.shape
    truth = top_k_inner_product(queries, features, K).indices
    calib_truth = top_k_inner_product(calib, features, K).indices
    rows: list[dict] = []

    def add(method: str, ms: np.ndarray, recall: float, **extra: object) -> None:
        rows.append(
            {"data": data, "records": n, "dim": dim, "method": method, "p50_ms": float(np.median(ms)), "recall": recall}
            | {"p95_ms": float(np.percentile(ms, 95))}
            | extra
        )
        r = rows[-1]
        print(f"  {data} {n:,} {method}: p50 {r['p50_ms']:.2f} ms, recall {recall:.3f} {extra}", flush=True)

    ms = per_query_ms(lambda q: before_exact(q, features, K), queries[:16])
    add("before: numpy exact", ms, 1.0)
    if BeforeInt8.available:
        index = BeforeInt8(features)
        index.calibrate(calib, calib_truth)
        add(
            "before: torch int8 kernel",
            per_query_ms(lambda q: index.search(q, K), queries),
            recall_at(index.search(queries, K), truth),
            candidates=index.candidates,
        )
        del index
    ms = per_query_ms(lambda q: top_k_inner_product(q, features, K), queries[:16])
    add("faiss flat IP (exact)", ms, 1.0)
    shard_options = sorted({1, threads}) if n >= 1_000_000 else [1]
    for shards in shard_options:
        started = time.perf_counter()
        sq = SQ8Index(features, shards=shards)
        build = time.perf_counter() - started
        # Calibrate on the calibration queries, then report recall on the others.
        truth_c = calib_truth
        c = 256
        while recall_at(sq.search(calib, K, candidates=c).indices, truth_c) < 0.95 and c < n:
            c *= 2
        sq.candidates = c
        name = "faiss SQ8 + rerank" + (f", {shards} shards" if shards > 1 else "")
        add(
            name,
            per_query_ms(lambda q, s=sq: s.search(q, K), queries),
            recall_at(sq.search(queries, K).indices, truth),
            candidates=c,
            build_s=round(build, 2),
            index_mb=round(sq.nbytes / 1e6, 1),
        )
        del sq
    return rows


def main() -> None:
    quick = "--quick" in sys.argv
    large = "--large" in sys.argv
    threads = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 2
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    print(f"machine: {digits.machine()}; faiss {faiss.__version__}; shard threads {threads}")
    sizes = [100_000] if quick else [100_000, 1_000_000] + ([10_000_000] if large else [])
    if "--sizes" in sys.argv:
        sizes = [int(x) for x in sys.argv[sys.argv.index("--sizes") + 1].split(",")]
    rng = np.random.default_rng(0)
    dim = 128
    rows: list[dict] = []
    for n in sizes:
        features = np.empty((n, dim), np.float32)
        for s in range(0, n, 1 << 20):
            features[s : s + (1 << 20)] = rng.standard_normal((min(1 << 20, n - s), dim), dtype=np.float32)
        queries = rng.standard_normal((32, dim), dtype=np.float32)
        calib = rng.standard_normal((32, dim), dtype=np.float32)
        rows += rows_for("gaussian", features, queries, calib, threads)
        del features
    if not quick and "--no-gradients" not in sys.argv:
        features, both = gradient_features(1_000_000, dim, n_queries=64)
        rows += rows_for("gradients", features, both[:32], both[32:], threads)
        del features
    out = digits.OUT / "topk_faiss.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    print("\n| data | records | method | p50 ms/query | p95 ms | recall@50 | candidates | vs ours before (exact) |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        ref = next(x for x in rows if x["data"] == r["data"] and x["records"] == r["records"])
        print(
            f"| {r['data']} | {r['records']:,} | {r['method']} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | "
            f"{r['recall']:.3f} | {r.get('candidates', '-')} | {r['p50_ms'] / ref['p50_ms']:.2f}x |"
        )
    if max(sizes) < 10_000_000:
        top = max(sizes)
        print(f"\n10M extrapolated linearly from {top:,} rows (not run; --large runs it):")
        for r in rows:
            if r["records"] == top and r["data"] == "gaussian":
                print(f"  {r['method']}: ~{r['p50_ms'] * 10_000_000 / top:.0f} ms p50 per query")


if __name__ == "__main__":
    main()
