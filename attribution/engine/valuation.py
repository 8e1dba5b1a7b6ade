"""Data valuation in embedding space: exact KNN-Shapley, a representation-similarity baseline, duplicate collapsing."""

from __future__ import annotations

import numpy as np

from attribution.engine.search import TopK, top_k_inner_product


def _normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _distances(train: np.ndarray, val: np.ndarray, metric: str) -> np.ndarray:
    if metric == "cosine":
        return 1.0 - _normalize(val) @ _normalize(train).T
    if metric == "euclidean":
        sq = (val**2).sum(1)[:, None] + (train**2).sum(1)[None, :] - 2.0 * val @ train.T
        return np.sqrt(np.clip(sq, 0.0, None))
    raise ValueError(f"unknown metric {metric!r}: use 'cosine' or 'euclidean'")


def knn_shapley(
    train_emb: np.ndarray,
    train_labels: np.ndarray,
    val_emb: np.ndarray,
    val_labels: np.ndarray,
    k: int = 5,
    *,
    metric: str = "cosine",
    block_elements: int = 1 << 23,
) -> np.ndarray:
    """Exact Shapley values of a K-nearest-neighbour classifier's validation likelihood (Jia et al., 2019).

    The utility of a subset S for one validation point is (1/K) * the number of its min(K, |S|) nearest members of S
    that carry the right label; values are averaged over the validation points. Low or negative = harmful.
    Distance ties are broken by training index, so the result is deterministic.
    """
    train = np.asarray(train_emb, dtype=np.float64)
    val = np.asarray(val_emb, dtype=np.float64)
    ytrain = np.asarray(train_labels).reshape(-1)
    yval = np.asarray(val_labels).reshape(-1)
    n = len(train)
    if n == 0:
        raise ValueError("the training set is empty: nothing to value")
    if len(ytrain) != n or len(yval) != len(val):
        raise ValueError("embeddings and labels differ in length")
    if len(val) == 0:
        raise ValueError("the validation set is empty: values would be meaningless")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    values = np.zeros(n, dtype=np.float64)
    ranks = np.arange(1, n + 1, dtype=np.float64)
    step = np.minimum(k, ranks[:-1]) / ranks[:-1] / k  # min(K, i) / (i K) for i = 1..n-1
    rows_per_block = max(1, block_elements // n)
    for start in range(0, len(val), rows_per_block):
        d = _distances(train, val[start : start + rows_per_block], metric)
        order = np.argsort(d, axis=1, kind="stable")
        match = (ytrain[order] == yval[start : start + rows_per_block, None]).astype(np.float64)
        s = np.empty_like(match)
        s[:, -1] = match[:, -1] * min(k, n) / (n * k)
        if n > 1:
            increments = (match[:, :-1] - match[:, 1:]) * step[None, :]
            # s_i = s_{i+1} + increment_i: a reversed cumulative sum from the farthest point inwards.
            s[:, :-1] = s[:, -1:] + np.cumsum(increments[:, ::-1], axis=1)[:, ::-1]
        np.add.at(values, order.ravel(), s.ravel())
    return values / len(val)


def representation_similarity(train_emb: np.ndarray, test_emb: np.ndarray, k: int | None = None) -> np.ndarray | TopK:
    """Baseline attribution: cosine similarity of embeddings. [n_test, n_train] scores, or TopK when k is given."""
    train = _normalize(np.asarray(train_emb, dtype=np.float32))
    test = _normalize(np.asarray(test_emb, dtype=np.float32))
    if k is None:
        return test @ train.T
    return top_k_inner_product(test, train, k)


def collapse_duplicates(scores: np.ndarray, cluster_of: np.ndarray) -> np.ndarray:
    """Credit each duplicate cluster once, to its earliest member (lowest index); the other members get 0.

    ``cluster_of[i]`` is record i's cluster label (a record alone in its cluster keeps its score). The earliest
    member receives the cluster's mean score: for exact copies that is each copy's own score, and for near
    duplicates it cannot be raised by adding many variants and keeping the luckiest. Works on [n_train] or
    [n_test, n_train] arrays.
    """
    values = np.asarray(scores, dtype=np.float64)
    clusters = np.asarray(cluster_of).reshape(-1)
    if values.shape[-1] != len(clusters):
        raise ValueError(f"scores cover {values.shape[-1]} records but cluster_of has {len(clusters)}")
    _, first, inverse, counts = np.unique(clusters, return_index=True, return_inverse=True, return_counts=True)
    flat = values.reshape(-1, len(clusters))
    sums = np.zeros((flat.shape[0], len(first)), dtype=np.float64)
    np.add.at(sums, (slice(None), inverse), flat)
    out = np.zeros_like(flat)
    out[:, first] = sums / counts[None, :]
    return out.reshape(values.shape)
