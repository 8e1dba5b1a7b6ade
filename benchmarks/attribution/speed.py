"""Attribution latency: exact (faiss flat), SQ8 (faiss int8) and IVF (approximate, with recall@50) top-k over 10k / 100k / 1M indexed records (k dims 128 and 256, batches 1 and 32),
query-gradient cost, index build time per record versus one training epoch, and SpanIndex build/query times.
Single-threaded unless a row says otherwise. Usage: python benchmarks/attribution/speed.py [--quick] [--topk-only]
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

from attribution.engine import GradientIndex, IVFIndex, SpanIndex, SQ8Index, top_k_inner_product  # noqa: E402


def timed(fn: Callable[[], object], repeats: int) -> np.ndarray:
    fn()
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return np.array(out) * 1e3


def gradient_features(n: int, dim: int, n_queries: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A realistically structured index: projected per-example loss gradients of the digits logistic regression over
    n augmented digits (shifted, rescaled, noised; 5% random labels), in closed form ((softmax - onehot) outer [x, 1]),
    and preconditioned ((Phi^T Phi + 0.1 mean-eig I)^-1) gradients of held-out test digits as queries."""
    split = digits.load_digits_split()
    x, y = split["x_train"].numpy(), split["y_train"].numpy()
    model = digits.train("logreg", split["x_train"], split["y_train"])
    w = model.weight.detach().numpy().astype(np.float32)
    b = model.bias.detach().numpy().astype(np.float32)
    rng = np.random.default_rng(seed)
    proj = (rng.standard_normal((650, dim)) / np.sqrt(dim)).astype(np.float32)

    def grads(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        logits = xs @ w.T + b
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p[np.arange(len(ys)), ys] -= 1.0
        xa = np.concatenate([xs, np.ones((len(xs), 1), np.float32)], 1)
        return (p[:, :, None] * xa[:, None, :]).reshape(len(xs), 650) @ proj

    feats = np.empty((n, dim), np.float32)
    for s in range(0, n, 50_000):
        m = min(50_000, n - s)
        base = rng.integers(0, len(x), m)
        img = np.roll(x[base].reshape(m, 8, 8), int(rng.integers(-1, 2)), axis=1 + int(rng.integers(0, 2)))
        noise = 0.3 * rng.standard_normal((m, 64))
        xs = (img.reshape(m, 64) * rng.uniform(0.8, 1.2, (m, 1)) + noise).astype(np.float32)
        ys = y[base].copy()
        flip = rng.random(m) < 0.05
        ys[flip] = rng.integers(0, 10, int(flip.sum()))
        feats[s : s + m] = grads(xs, ys)
    gram = feats.T.astype(np.float64) @ feats
    ev, vec = np.linalg.eigh(gram)
    pre = (vec / (np.clip(ev, 0, None) + 0.1 * max(ev.mean(), 1e-12))) @ vec.T
    xt, yt = split["x_test"].numpy()[:n_queries], split["y_test"].numpy()[:n_queries]
    return feats, (grads(xt, yt).astype(np.float64) @ pre).astype(np.float32)


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(a, b)) / truth.shape[1] for a, b in zip(found, truth)]))


def latency_row(data: str, n: int, dim: int, method: str, batch: int, ms: np.ndarray, **extra: object) -> dict:
    return {
        "data": data,
        "records": n,
        "dim": dim,
        "method": method,
        "batch": batch,
        "threads": torch.get_num_threads(),
        "p50_ms_per_query": float(np.median(ms)) / batch,
        "p95_ms_per_query": float(np.percentile(ms, 95)) / batch,
        "p50_ms_per_call": float(np.median(ms)),
    } | extra


def topk_rows(sizes: list[int], k: int = 50) -> list[dict[str, object]]:
    """Exact search at every size; at sizes >= 100k also the faiss SQ8 index (the approximate path GradientIndex uses) and
    the IVF index (batch 1), each calibrated to recall@50 >= 0.95 on 32 calibration queries, with recall reported on
    32 other queries. Data: random Gaussian features, and at the largest size also projected, preconditioned
    gradients (``gradient_features``), whose scores, like Gaussian ones, spread over every direction."""
    rows: list[dict[str, object]] = []
    rng = np.random.default_rng(0)
    for dim in (128, 256):
        for data in ("gaussian", "gradients"):
            for n in sizes if data == "gaussian" else sizes[-1:]:
                if data == "gaussian":
                    features = rng.standard_normal((n, dim), dtype=np.float32)
                    queries = rng.standard_normal((32, dim), dtype=np.float32)
                    calib = rng.standard_normal((32, dim), dtype=np.float32)
                else:
                    features, both = gradient_features(n, dim, n_queries=64)
                    queries, calib = both[:32], both[32:]
                for threads in (1, 2) if n == max(sizes) and data == "gaussian" else (1,):
                    torch.set_num_threads(threads)
                    for batch in (1, 32):
                        q = queries[:batch]
                        ms = timed(lambda q=q, f=features: top_k_inner_product(q, f, k), 20 if batch == 1 else 5)
                        rows.append(latency_row(data, n, dim, "exact", batch, ms, recall=1.0))
                torch.set_num_threads(1)
                if n < 100_000:
                    del features
                    continue
                truth = top_k_inner_product(queries, features, k).indices
                for method in ("sq8", "ivf"):
                    started = time.perf_counter()
                    index = SQ8Index(features) if method == "sq8" else IVFIndex(features)
                    build = time.perf_counter() - started
                    calibration = (
                        index.calibrate(calib, k=k, target=0.95)
                        if isinstance(index, SQ8Index)
                        else index.calibrate(features, calib, k=k, target=0.95)
                    )
                    recall = recall_at(index.search(queries, k).indices, truth)
                    per_query: list[float] = []
                    for i in range(len(queries)):
                        per_query.extend(timed(lambda q=queries[i : i + 1], ix=index: ix.search(q, k), 1))
                    setting = (
                        f"{index.candidates} candidates"
                        if isinstance(index, SQ8Index)
                        else f"nprobe {index.nprobe}/{index.nlist}"
                    )
                    extra = {
                        "recall": recall,
                        "setting": setting,
                        "build_s": build,
                        "calibration_recall": calibration["recall"],
                    }
                    rows.append(latency_row(data, n, dim, method, 1, np.array(per_query), **extra))
                    if method == "sq8":
                        ms = timed(lambda q=queries, ix=index: ix.search(q, k), 5)
                        rows.append(latency_row(data, n, dim, method, 32, ms, **extra))
                    del index
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
    only_topk = "--topk-only" in sys.argv
    build = {} if only_topk else build_rows()
    spans = [] if only_topk else [span_rows(n) for n in ((100_000,) if quick else (100_000, 1_000_000))]
    out = digits.OUT / ("speed_topk.json" if only_topk else "speed.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"topk": topk, "build": build, "spans": spans}, indent=1))
    print(
        "\n| data | records | k dims | method | batch | threads | p50 ms/query | p95 ms/query | p50 ms/call | "
        "recall@50 | setting | p50 vs 20 ms aim |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in topk:
        probe = r.get("setting", "-")
        print(
            f"| {r['data']} | {r['records']:,} | {r['dim']} | {r['method']} | {r['batch']} | {r['threads']} | "
            f"{r['p50_ms_per_query']:.2f} | {r['p95_ms_per_query']:.2f} | {r['p50_ms_per_call']:.2f} | "
            f"{r['recall']:.3f} | {probe} | {r['p50_ms_per_query'] / 20:.2f}x |"
        )
    approx_rows = [r for r in topk if r["method"] != "exact" and r["batch"] == 1]
    if approx_rows:
        print("\n| data | records | k dims | index | build s | calibration recall@50 | setting |")
        print("|---|---:|---:|---|---:|---:|---|")
        for r in approx_rows:
            print(
                f"| {r['data']} | {r['records']:,} | {r['dim']} | {r['method']} | {r['build_s']:.1f} | "
                f"{r['calibration_recall']:.3f} | {r['setting']} |"
            )
    if only_topk:
        return
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
