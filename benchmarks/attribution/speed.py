"""Attribution latency: exact top-k over 10k / 100k / 1M indexed records (k dims 128 and 256, batches 1 and 32),
query-gradient cost, index build time per record versus one training epoch, and SpanIndex build/query times.
Single-threaded unless a row says otherwise. Usage: python benchmarks/attribution/speed.py [--quick]
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import digits  # noqa: E402

from attribution.engine import GradientIndex, SpanIndex, top_k_inner_product  # noqa: E402


def timed(fn: Callable[[], object], repeats: int) -> np.ndarray:
    fn()
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return np.array(out) * 1e3


def topk_rows(sizes: list[int]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    rng = np.random.default_rng(0)
    for dim in (128, 256):
        for n in sizes:
            features = rng.standard_normal((n, dim), dtype=np.float32)
            for threads in (1, 2) if n == max(sizes) else (1,):
                torch.set_num_threads(threads)
                for batch in (1, 32):
                    queries = rng.standard_normal((batch, dim), dtype=np.float32)
                    ms = timed(lambda q=queries, f=features: top_k_inner_product(q, f, 10), 30 if batch == 1 else 10)
                    rows.append(
                        {
                            "records": n,
                            "dim": dim,
                            "batch": batch,
                            "threads": threads,
                            "p50_ms_per_query": float(np.median(ms)) / batch,
                            "p95_ms_per_query": float(np.percentile(ms, 95)) / batch,
                            "p50_ms_per_call": float(np.median(ms)),
                        }
                    )
            torch.set_num_threads(1)
            del features
    return rows


def build_rows() -> dict[str, float]:
    split = digits.load_digits_split()
    x, y = split["x_train"], split["y_train"]
    out: dict[str, float] = {}
    for kind in digits.MODEL_KINDS:
        model = digits.train(kind, x, y)
        started = time.perf_counter()
        index = GradientIndex.build(model, digits.per_example_loss, x, y, proj_dim=256)
        build = time.perf_counter() - started
        started = time.perf_counter()
        index_f = GradientIndex.build(model, digits.per_example_loss, x, y, proj_dim=256, hessian="fisher", damping=0.1)
        build_f = time.perf_counter() - started
        # One epoch of minibatch training (batch 32, Adam) over the same records.
        trainee = digits.make_model(kind)
        opt = torch.optim.Adam(trainee.parameters(), lr=0.01)
        started = time.perf_counter()
        for s in range(0, len(x), 32):
            opt.zero_grad()
            digits.per_example_loss(trainee(x[s : s + 32]), y[s : s + 32]).mean().backward()
            opt.step()
        epoch = time.perf_counter() - started
        query = timed(lambda i=index: i.top_k(split["x_test"][:1], split["y_test"][:1], 10), 30)
        out[f"{kind}_build_ms_per_record"] = build / len(x) * 1e3
        out[f"{kind}_build_fisher_ms_per_record"] = build_f / len(x) * 1e3
        out[f"{kind}_epoch_ms_per_record"] = epoch / len(x) * 1e3
        out[f"{kind}_build_over_epoch"] = build / epoch
        out[f"{kind}_build_fisher_over_epoch"] = build_f / epoch
        out[f"{kind}_end_to_end_query_p50_ms"] = float(np.median(query))
        del index_f
    return out


def span_rows(n_tokens: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    vocab = 32_000
    # Zipf-like token frequencies, like real text: a few very common tokens make long suffix-array ties.
    tokens = (rng.zipf(1.2, size=n_tokens) % vocab).astype(np.int64)
    docs = np.split(tokens, np.arange(200, n_tokens, 200))
    started = time.perf_counter()
    index = SpanIndex.build(docs)
    build = time.perf_counter() - started
    outputs = []
    for i in range(20):
        doc = docs[(i * 997) % len(docs)]
        copied = doc[:100]
        outputs.append(np.concatenate([(rng.zipf(1.2, 78) % vocab), copied, (rng.zipf(1.2, 78) % vocab)]))
    ms = np.array([timed(lambda o=o: index.find_spans(o, min_len=8), 1)[0] for o in outputs])
    found = [max((s.length for s in index.find_spans(o, min_len=8)), default=0) for o in outputs]
    return {
        "tokens": n_tokens,
        "build_s_per_million_tokens": build / n_tokens * 1e6,
        "query_256_p50_ms": float(np.median(ms)),
        "query_256_p95_ms": float(np.percentile(ms, 95)),
        "longest_span_found_min": float(min(found)),
    }


def main() -> None:
    torch.set_num_threads(1)
    quick = "--quick" in sys.argv
    print(f"machine: {digits.machine()}")
    sizes = [10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]
    topk = topk_rows(sizes)
    build = build_rows()
    spans = [span_rows(n) for n in ((100_000,) if quick else (100_000, 1_000_000))]
    out = digits.OUT / "speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"topk": topk, "build": build, "spans": spans}, indent=1))
    print("\n| records | k dims | batch | threads | p50 ms/query | p95 ms/query | p50 ms/call | p50 vs 20 ms aim |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in topk:
        print(
            f"| {r['records']:,} | {r['dim']} | {r['batch']} | {r['threads']} | {r['p50_ms_per_query']:.2f} | "
            f"{r['p95_ms_per_query']:.2f} | {r['p50_ms_per_call']:.2f} | {r['p50_ms_per_query'] / 20:.2f}x |"
        )
    print("\n| gradient index on digits (1,000 records, proj 256) | value |")
    print("|---|---:|")
    for key, value in build.items():
        print(f"| {key} | {value:.3f} |")
    print("\n| span index tokens | build s per 1M tokens | 256-token query p50 ms | p95 ms | shortest longest-span |")
    print("|---:|---:|---:|---:|---:|")
    for s in spans:
        print(
            f"| {s['tokens']:,} | {s['build_s_per_million_tokens']:.2f} | {s['query_256_p50_ms']:.2f} | "
            f"{s['query_256_p95_ms']:.2f} | {s['longest_span_found_min']:.0f} |"
        )


if __name__ == "__main__":
    main()
