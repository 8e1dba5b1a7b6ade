"""Maximum-inner-product top-k over a large feature matrix, on faiss: exact (flat) and approximate (int8 SQ, IVF).

``top_k_inner_product`` scans every row (faiss flat inner product). ``SQ8Index`` scans faiss int8 scalar-quantized
codes, sharded across threads for large indexes, and reranks the best candidates exactly (the approximate index
``GradientIndex`` uses). ``IVFIndex`` is an inverted-file index for large matrices: a k-means coarse
quantizer splits the rows into ``nlist`` lists stored contiguously; a query scores the centroids, scans only the
``nprobe`` lists whose centroids have the largest inner product with it, and ranks those rows by their exact inner
product (so every score returned is exact; only rows in unprobed lists can be missed). ``calibrate`` picks the smallest
``nprobe`` whose recall@k against exact search reaches a target on sample queries. On preconditioned gradients (whose
scores spread over every direction, by design) IVF needs most lists for 0.95 recall, so it is kept for comparison only
(benchmarks/attribution/speed.py).
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any, NamedTuple

import faiss
import numpy as np
import torch


class TopK(NamedTuple):
    """Best k per query, best first: ``indices`` and ``scores`` are both [n_queries, k]."""

    indices: np.ndarray
    scores: np.ndarray


def _sorted_topk(s: np.ndarray, i: np.ndarray) -> TopK:
    # A stable re-sort by (-score, index) makes ties deterministic.
    order = np.lexsort((i, -s), axis=1) if s.ndim == 2 and s.shape[0] else np.zeros_like(i)
    return TopK(np.take_along_axis(i, order, 1), np.take_along_axis(s, order, 1))


def _tensor(array: np.ndarray) -> torch.Tensor:
    with warnings.catch_warnings():
        # A memory-mapped index is read-only; it is only ever read here.
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(array)


def top_k_inner_product(queries: np.ndarray, features: np.ndarray, k: int, block_rows: int = 1 << 18) -> TopK:
    """Exact top-k of ``queries @ features.T`` without materializing more than [n_queries, block_rows] scores.

    float32 features are scanned with faiss's flat inner-product kernel (``faiss.knn``: SIMD per query, BLAS for
    batches), about 2x numpy's matrix-vector product for one query; other dtypes (float64 indexes) with torch's
    matrix product. Per-block winners are merged and ties broken by the lower row index, so the order is deterministic.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    n = features.shape[0]
    k = min(k, n)
    if features.dtype != np.float32:
        return _top_k_torch(queries, features, k, block_rows)
    q = np.ascontiguousarray(queries, dtype=np.float32)
    best: TopK | None = None
    for start in range(0, n, block_rows):
        block = np.ascontiguousarray(features[start : start + block_rows])
        scores, idx = faiss.knn(q, block, min(k, len(block)), metric=faiss.METRIC_INNER_PRODUCT)
        idx += start
        if best is not None:
            scores = np.concatenate([best.scores, scores], axis=1)
            idx = np.concatenate([best.indices, idx], axis=1)
        merged = _sorted_topk(scores, idx)
        best = TopK(merged.indices[:, :k], merged.scores[:, :k])
    assert best is not None
    return best


def _top_k_torch(queries: np.ndarray, features: np.ndarray, k: int, block_rows: int) -> TopK:
    q_np = np.ascontiguousarray(queries, dtype=features.dtype)
    q = torch.from_numpy(q_np)
    best_scores: torch.Tensor | None = None
    best_indices: torch.Tensor | None = None
    for start in range(0, features.shape[0], block_rows):
        scores = q @ _tensor(np.ascontiguousarray(features[start : start + block_rows])).T
        values, idx = torch.topk(scores, min(k, scores.shape[1]), dim=1)
        idx = idx + start
        if best_scores is None or best_indices is None:
            best_scores, best_indices = values, idx
        else:
            values = torch.cat([best_scores, values], dim=1)
            idx = torch.cat([best_indices, idx], dim=1)
            best_scores, pick = torch.topk(values, k, dim=1)
            best_indices = torch.gather(idx, 1, pick)
    assert best_scores is not None and best_indices is not None
    return _sorted_topk(best_scores.numpy(), best_indices.numpy())


def _assign(x: np.ndarray, centroids: np.ndarray, half_sq: np.ndarray, block_rows: int = 1 << 15) -> np.ndarray:
    """Nearest centroid (L2) per row: argmax of x.c - |c|^2 / 2, blockwise."""
    out = np.empty(len(x), dtype=np.int64)
    for start in range(0, len(x), block_rows):
        block = np.asarray(x[start : start + block_rows], dtype=np.float32)
        out[start : start + len(block)] = np.argmax(block @ centroids.T - half_sq, axis=1)
    return out


def kmeans(x: np.ndarray, n_clusters: int, *, iters: int = 10, seed: int = 0) -> np.ndarray:
    """Lloyd's k-means in float32 numpy; empty clusters are re-seeded from random rows. Returns the centroids."""
    rng = np.random.default_rng(seed)
    data = np.asarray(x, dtype=np.float32)
    centroids = data[rng.choice(len(data), n_clusters, replace=False)].copy()
    for _ in range(iters):
        labels = _assign(data, centroids, 0.5 * (centroids**2).sum(1))
        counts = np.bincount(labels, minlength=n_clusters)
        sums = np.zeros_like(centroids, dtype=np.float64)
        _segment_sums(sums, labels, data)
        empty = counts == 0
        centroids = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
        if empty.any():
            centroids[empty] = data[rng.choice(len(data), int(empty.sum()), replace=False)]
    return centroids


def _segment_sums(sums: np.ndarray, labels: np.ndarray, data: np.ndarray) -> None:
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    sums[sorted_labels[starts]] = np.add.reduceat(data[order].astype(np.float64), starts, axis=0)


class IVFIndex:
    """Inverted-file approximate maximum-inner-product search with exact scores for the rows it scans.

    Holds a copy of the features reordered by list (n * dim * 4 bytes in float32), the centroids and the permutation.
    """

    def __init__(
        self,
        features: np.ndarray,
        *,
        nlist: int | None = None,
        nprobe: int | None = None,
        train_rows: int = 1 << 16,
        iters: int = 10,
        seed: int = 0,
    ) -> None:
        n = int(features.shape[0])
        if n < 1:
            raise ValueError("cannot build an IVF index over zero rows")
        self.nlist = int(nlist) if nlist else max(1, min(n, int(round(math.sqrt(n)))))
        rng = np.random.default_rng(seed)
        sample_rows = min(n, max(train_rows, 32 * self.nlist))
        sample = np.sort(rng.choice(n, sample_rows, replace=False)) if sample_rows < n else np.arange(n)
        self.centroids = kmeans(np.asarray(features[sample], dtype=np.float32), self.nlist, iters=iters, seed=seed)
        labels = _assign(features, self.centroids, 0.5 * (self.centroids**2).sum(1))
        self.order = np.argsort(labels, kind="stable")
        counts = np.bincount(labels, minlength=self.nlist)
        self.offsets = np.concatenate([[0], np.cumsum(counts)])
        self.sorted_features = np.ascontiguousarray(np.asarray(features, dtype=np.float32)[self.order])
        self.n = n
        self.nprobe = int(nprobe) if nprobe else max(1, min(self.nlist, self.nlist // 16))

    def search(self, queries: np.ndarray, k: int, *, nprobe: int | None = None) -> TopK:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        q_all = np.ascontiguousarray(queries, dtype=np.float32)
        k = min(k, self.n)
        probe = min(self.nlist, int(nprobe or self.nprobe))
        cent_scores = q_all @ self.centroids.T
        sizes = np.diff(self.offsets)
        out_i = np.empty((len(q_all), k), dtype=np.int64)
        out_s = np.empty((len(q_all), k), dtype=np.float32)
        for row, q in enumerate(q_all):
            ranked = np.argsort(-cent_scores[row], kind="stable")
            lists = ranked[:probe]
            # Probe further lists until at least k rows are scanned.
            extra = probe
            while sizes[lists].sum() < k and extra < self.nlist:
                extra = min(self.nlist, extra * 2)
                lists = ranked[:extra]
            lists = lists[sizes[lists] > 0]
            scores = np.concatenate([self.sorted_features[self.offsets[c] : self.offsets[c + 1]] @ q for c in lists])
            rows = np.concatenate([np.arange(self.offsets[c], self.offsets[c + 1]) for c in lists])
            values, pick = torch.topk(torch.from_numpy(scores), k)
            out_s[row] = values.numpy()
            out_i[row] = self.order[rows[pick.numpy()]]
        return _sorted_topk(out_s, out_i)

    def calibrate(
        self, exact_features: np.ndarray, sample_queries: np.ndarray, *, k: int = 50, target: float = 0.95
    ) -> dict[str, float]:
        """Set ``nprobe`` to the smallest power-of-two multiple reaching mean recall@k >= target on the samples."""
        truth = top_k_inner_product(sample_queries, exact_features, k).indices
        probe = max(1, self.nlist // 64)
        recall = 0.0
        while True:
            found = self.search(sample_queries, k, nprobe=probe).indices
            recall = float(np.mean([len(np.intersect1d(a, b)) / truth.shape[1] for a, b in zip(found, truth)]))
            if recall >= target or probe >= self.nlist:
                break
            probe = min(self.nlist, probe * 2)
        self.nprobe = probe
        return {"nprobe": float(probe), "recall": recall, "fraction_scanned": probe / self.nlist}


# A flat index of more rows than this is split into shards searched in parallel threads (per-shard top-k merged).
SHARD_MIN_ROWS = 1_000_000


def _shard_count(n: int) -> int:
    return max(1, min(os.cpu_count() or 1, n // SHARD_MIN_ROWS))


class SQ8Index:
    """Approximate maximum-inner-product search: a faiss int8 scalar-quantized scan and an exact rerank.

    Every row is stored as faiss ``IndexScalarQuantizer`` codes (``QT_8bit``: one byte per value on a per-column
    range learnt from a sample, a quarter of float32's bytes) and scanned with faiss's SIMD inner-product kernel, about
    7 ms for 1M x 128 rows on one core of this CPU. The best ``candidates`` rows per query are then rescored exactly in
    float32 from the original features, so every score returned is exact; a true top-k row is missed only if
    quantization pushes it below the candidate cut. Large indexes are split into ``shards`` (contiguous row ranges,
    one faiss index each) behind ``faiss.IndexShards``, which searches them in one thread each and merges their top
    candidates, so a single query uses every core.
    """

    def __init__(
        self,
        features: np.ndarray,
        *,
        candidates: int = 1024,
        shards: int | None = None,
        train_rows: int = 1 << 17,
        block_rows: int = 1 << 18,
        seed: int = 0,
    ) -> None:
        n, dim = int(features.shape[0]), int(features.shape[1])
        if n < 1:
            raise ValueError("cannot build an int8 index over zero rows")
        self.features = features
        self.n = n
        self.dim = dim
        self.candidates = int(candidates)
        self.shards = max(1, min(n, int(shards) if shards else _shard_count(n)))
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(n, train_rows, replace=False)) if n > train_rows else np.arange(n)
        trained = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        trained.train(np.ascontiguousarray(features[sample], dtype=np.float32))
        bounds = np.linspace(0, n, self.shards + 1).astype(np.int64)
        self._parts: list[Any] = []
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            part = faiss.clone_index(trained)
            for start in range(int(lo), int(hi), block_rows):
                part.add(np.ascontiguousarray(features[start : min(int(hi), start + block_rows)], dtype=np.float32))
            self._parts.append(part)
        if self.shards == 1:
            self._index = self._parts[0]
        else:
            self._index = faiss.IndexShards(dim, True, True)
            for part in self._parts:  # self._parts keeps them alive: IndexShards does not own them
                self._index.add_shard(part)

    @property
    def nbytes(self) -> int:
        return self.n * int(self._parts[0].sa_code_size())

    def search(self, queries: np.ndarray, k: int, *, candidates: int | None = None) -> TopK:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        q_all = np.ascontiguousarray(queries, dtype=np.float32)
        k = min(k, self.n)
        c = min(self.n, max(k, int(candidates or self.candidates)))
        _, cand = self._index.search(q_all, c)
        out_i = np.empty((len(q_all), k), dtype=np.int64)
        out_s = np.empty((len(q_all), k), dtype=np.float32)
        for row in range(len(q_all)):
            rows = np.sort(cand[row][cand[row] >= 0])
            exact = np.asarray(self.features[rows], dtype=np.float32) @ q_all[row]
            pick = np.argpartition(-exact, k - 1)[:k] if len(rows) > k else np.arange(len(rows))
            out_s[row] = exact[pick]
            out_i[row] = rows[pick]
        return _sorted_topk(out_s, out_i)

    def calibrate(
        self, sample_queries: np.ndarray, *, k: int = 50, target: float = 0.95, start: int = 256
    ) -> dict[str, float]:
        """Set ``candidates`` to the smallest power-of-two multiple of ``start`` reaching mean recall@k >= target."""
        truth = top_k_inner_product(sample_queries, self.features, k).indices
        c = max(k, start)
        while True:
            found = self.search(sample_queries, k, candidates=c).indices
            recall = float(np.mean([len(np.intersect1d(a, b)) / truth.shape[1] for a, b in zip(found, truth)]))
            if recall >= target or c >= self.n:
                break
            c = min(self.n, c * 2)
        self.candidates = c
        return {"candidates": float(c), "recall": recall}
