"""Maximum-inner-product top-k over a large feature matrix: exact (blocked) and approximate (int8 scan, IVF).

``top_k_inner_product`` scans every row. ``Int8Index`` scans an int8 copy and reranks the best candidates exactly (the
approximate index ``GradientIndex`` uses). ``IVFIndex`` is an inverted-file index for large matrices: a k-means coarse
quantizer splits the rows into ``nlist`` lists stored contiguously; a query scores the centroids, scans only the
``nprobe`` lists whose centroids have the largest inner product with it, and ranks those rows by their exact inner
product (so every score returned is exact; only rows in unprobed lists can be missed). ``calibrate`` picks the smallest
``nprobe`` whose recall@k against exact search reaches a target on sample queries. On preconditioned gradients (whose
scores spread over every direction, by design) IVF needs most lists for 0.95 recall, so it is kept for comparison only
(benchmarks/attribution/speed.py).
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

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
    """Top-k of ``queries @ features.T`` without materializing more than [n_queries, block_rows] scores.

    A single query uses numpy's matrix-vector product (about 3x faster than torch's on this CPU); batches use torch's
    matrix product. torch.topk selects per block rather than np.argpartition: about 5x faster over 1M scores.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    n = features.shape[0]
    k = min(k, n)
    q_np = np.ascontiguousarray(queries, dtype=features.dtype)
    single = q_np.shape[0] == 1
    q = torch.from_numpy(q_np)
    best_scores: torch.Tensor | None = None
    best_indices: torch.Tensor | None = None
    for start in range(0, n, block_rows):
        block_np = np.ascontiguousarray(features[start : start + block_rows])
        if single:
            scores = _tensor(block_np @ q_np[0]).unsqueeze(0)
        else:
            scores = q @ _tensor(block_np).T
        kk = min(k, scores.shape[1])
        values, idx = torch.topk(scores, kk, dim=1)
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


def int8_kernel_available() -> bool:
    """Whether this torch has the CPU int8 weight-only matmul kernel that ``Int8Index`` scans with."""
    return hasattr(torch.ops.aten, "_weight_int8pack_mm")


class Int8Index:
    """Approximate maximum-inner-product search by an int8 scan and an exact rerank.

    Every row is stored as int8 with its own scale (max |value| / 127), a quarter of float32's bytes, and scanned with
    torch's int8 weight-only matrix kernel (bfloat16 queries and scores): on this CPU about 9 ms for 1M x 128 rows
    against about 25 ms for numpy's float32 matrix-vector product. The best ``candidates`` rows per query are then
    rescored exactly in float32 from the original features, so every score returned is exact; a true top-k row is
    missed only if quantization pushes it below the candidate cut. Columns are zero-padded to a multiple of 64 (the
    kernel needs aligned widths; zero columns change no inner product). Without the kernel, search is exact.
    """

    PAD = 64

    def __init__(self, features: np.ndarray, *, candidates: int = 1024, block_rows: int = 1 << 16) -> None:
        n, dim = int(features.shape[0]), int(features.shape[1])
        if n < 1:
            raise ValueError("cannot build an int8 index over zero rows")
        self.features = features
        self.n = n
        self.dim = dim
        self.candidates = int(candidates)
        self.available = int8_kernel_available()
        if not self.available:
            return
        width = -(-dim // self.PAD) * self.PAD
        codes = np.zeros((n, width), dtype=np.int8)
        scales = np.empty(n, dtype=np.float32)
        for start in range(0, n, block_rows):
            block = np.asarray(features[start : start + block_rows], dtype=np.float32)
            peak = np.abs(block).max(axis=1)
            scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
            codes[start : start + len(block), :dim] = np.rint(block / scale[:, None]).astype(np.int8)
            scales[start : start + len(block)] = scale
        self.codes = torch.from_numpy(codes)
        self.scales = torch.from_numpy(scales).to(torch.bfloat16)
        self.width = width

    def search(self, queries: np.ndarray, k: int, *, candidates: int | None = None, chunk: int = 32) -> TopK:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if not self.available:
            return top_k_inner_product(queries, self.features, k)
        q_all = np.ascontiguousarray(queries, dtype=np.float32)
        k = min(k, self.n)
        c = min(self.n, max(k, int(candidates or self.candidates)))
        out_i = np.empty((len(q_all), k), dtype=np.int64)
        out_s = np.empty((len(q_all), k), dtype=np.float32)
        for start in range(0, len(q_all), chunk):
            q = q_all[start : start + chunk]
            padded = torch.zeros((len(q), self.width), dtype=torch.bfloat16)
            padded[:, : self.dim] = torch.from_numpy(q)
            rough = torch.ops.aten._weight_int8pack_mm(padded, self.codes, self.scales)
            cand = torch.topk(rough, c, dim=1).indices.numpy()
            for row in range(len(q)):
                rows = np.sort(cand[row])
                exact = np.asarray(self.features[rows], dtype=np.float32) @ q[row]
                values, pick = torch.topk(torch.from_numpy(exact), k)
                out_s[start + row] = values.numpy()
                out_i[start + row] = rows[pick.numpy()]
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
