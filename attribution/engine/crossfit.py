"""Cross-fitted label agreement: does a model that never saw a record agree with the record's label?

Each record is scored by a linear softmax classifier trained on the other folds of the training set (K-fold cross
fitting, as in confident learning, Northcutt et al. 2021). A record whose label the rest of the data contradicts gets
a large ``margin``: the out-of-fold probability of the best other label minus that of its own label. Unlike
self-influence, the record cannot pull the model towards its own (wrong) label, which is what makes it the sharper
signal when the classes overlap in embedding space (benchmarks/attribution/demo_flips.py measures both).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class CrossFit:
    """Out-of-fold results per training record."""

    probabilities: np.ndarray  # [n, classes]: the out-of-fold predicted distribution
    own: np.ndarray  # [n]: out-of-fold probability of the record's own label
    best_other: np.ndarray  # [n]: the most probable other label
    margin: np.ndarray  # [n]: p(best other) - p(own), in [-1, 1]; high = the rest of the data disagrees
    folds: int


def _fit_softmax(x: torch.Tensor, y: torch.Tensor, n_classes: int, l2: float, max_iter: int) -> torch.nn.Linear:
    # Mean cross-entropy + l2 * |W|^2 is strictly convex: L-BFGS reaches the same optimum whatever the start.
    layer = torch.nn.Linear(x.shape[1], n_classes, dtype=x.dtype)
    torch.nn.init.zeros_(layer.weight)
    torch.nn.init.zeros_(layer.bias)
    opt = torch.optim.LBFGS(layer.parameters(), lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(layer(x), y) + l2 * (layer.weight**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return layer


def cross_fit(
    train_emb: np.ndarray,
    train_labels: np.ndarray,
    *,
    n_classes: int | None = None,
    folds: int = 10,
    l2: float = 1e-4,
    seed: int = 0,
    max_iter: int = 200,
    extra_emb: np.ndarray | None = None,
    extra_labels: np.ndarray | None = None,
) -> CrossFit:
    """Out-of-fold label probabilities of every record under a linear softmax model on its embedding.

    ``folds`` is capped at the number of records; folds are a seeded permutation, so the result is deterministic.
    ``l2`` weighs the squared weights against the mean cross-entropy. ``extra_emb``/``extra_labels`` (a validation
    split, say) join every fold's training data and are never scored: more labelled data for the check.
    """
    x_all = np.asarray(train_emb, dtype=np.float64)
    labels = np.asarray(train_labels, dtype=np.int64)
    n = len(labels)
    if x_all.ndim != 2 or len(x_all) != n:
        raise ValueError(f"{len(x_all)} embeddings but {n} labels")
    if n < 2:
        raise ValueError("cross fitting needs at least two records")
    if not np.isfinite(x_all).all():
        raise ValueError("the embeddings hold NaN or infinite values")
    classes = int(n_classes if n_classes is not None else labels.max() + 1)
    if labels.min() < 0 or labels.max() >= classes:
        raise ValueError(f"labels must lie in 0..{classes - 1}")
    k = max(2, min(folds, n))
    order = np.random.default_rng(seed).permutation(n)
    probabilities = np.zeros((n, classes), dtype=np.float64)
    x = torch.from_numpy(x_all)
    y = torch.from_numpy(labels)
    if extra_emb is not None and extra_labels is not None and len(extra_labels):
        x_extra = torch.from_numpy(np.asarray(extra_emb, dtype=np.float64))
        y_extra = torch.from_numpy(np.asarray(extra_labels, dtype=np.int64))
        if x_extra.shape[1] != x.shape[1] or len(x_extra) != len(y_extra):
            raise ValueError("the extra embeddings and labels do not match the training records")
    else:
        x_extra, y_extra = x[:0], y[:0]
    for f in range(k):
        held = np.sort(order[f::k])
        kept = np.setdiff1d(np.arange(n), held)
        layer = _fit_softmax(torch.cat([x[kept], x_extra]), torch.cat([y[kept], y_extra]), classes, l2, max_iter)
        with torch.no_grad():
            probabilities[held] = torch.softmax(layer(x[held]), dim=1).numpy()
    rows = np.arange(n)
    own = probabilities[rows, labels]
    others = probabilities.copy()
    others[rows, labels] = -1.0
    best_other = others.argmax(axis=1)
    margin = others[rows, best_other] - own
    return CrossFit(probabilities, own, best_other, margin, k)
