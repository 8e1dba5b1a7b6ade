from __future__ import annotations

import numpy as np
import pytest
import torch

from attribution.engine.crossfit import _fit_softmax, cross_fit


def clusters(n_per: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = np.array([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]])
    x = np.concatenate([c + 0.6 * rng.normal(size=(n_per, 3)) for c in centers])
    y = np.repeat(np.arange(3), n_per)
    return x, y


def test_flipped_labels_get_the_largest_margins_and_the_right_suggestion() -> None:
    x, y = clusters()
    noisy = y.copy()
    flipped = np.array([2, 45, 90, 101])
    noisy[flipped] = (y[flipped] + 1) % 3
    result = cross_fit(x, noisy, folds=5, l2=1e-2)
    assert set(np.argsort(-result.margin)[: len(flipped)]) == set(flipped)
    assert (result.best_other[flipped] == y[flipped]).all()  # it suggests the true label
    assert (result.margin[flipped] > 0.5).all()
    clean = np.setdiff1d(np.arange(len(y)), flipped)
    assert np.median(result.margin[clean]) < -0.5
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-9)
    assert result.folds == 5


def test_out_of_fold_means_the_record_never_trains_its_own_model() -> None:
    # Two records with the same input and opposite labels: in-sample each would get p = 0.5 of its label;
    # out of fold (one per fold), each sees only the other and is contradicted.
    x = np.array([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [-1.0, 0.0]])
    y = np.array([0, 1, 0, 1])
    result = cross_fit(x, y, folds=4, l2=1e-3)
    assert (result.own < 0.5).all() and (result.margin > 0).all()


def test_deterministic_and_validated() -> None:
    x, y = clusters(10)
    a, b = cross_fit(x, y, seed=3, l2=1e-2), cross_fit(x, y, seed=3, l2=1e-2)
    np.testing.assert_array_equal(a.margin, b.margin)
    assert cross_fit(x[:3], y[:3], folds=10).folds == 3  # capped at the number of records
    with pytest.raises(ValueError, match="at least two"):
        cross_fit(x[:1], y[:1])
    with pytest.raises(ValueError, match="embeddings but"):
        cross_fit(x[:5], y[:4])
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        cross_fit(bad, y)
    with pytest.raises(ValueError, match="labels must lie"):
        cross_fit(x, y, n_classes=2)


def test_softmax_fit_reaches_the_regularized_optimum() -> None:
    x, y = clusters(15)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    layer = _fit_softmax(xt, yt, 3, 1e-2, 200)
    for p in layer.parameters():
        p.grad = None
    loss = torch.nn.functional.cross_entropy(layer(xt), yt) + 1e-2 * (layer.weight**2).sum()
    loss.backward()
    assert max(float(p.grad.abs().max()) for p in layer.parameters()) < 1e-4
