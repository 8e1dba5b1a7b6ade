from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from attribution.engine import TopK, collapse_duplicates, knn_shapley, representation_similarity


def knn_utility(subset: list[int], dist: np.ndarray, match: np.ndarray, k: int) -> float:
    nearest = sorted(subset, key=lambda i: (dist[i], i))[:k]
    return float(sum(match[i] for i in nearest)) / k


def brute_force_shapley(
    train: np.ndarray, ytrain: np.ndarray, val: np.ndarray, yval: np.ndarray, k: int, metric: str
) -> np.ndarray:
    n = len(train)
    values = np.zeros(n)
    for x, y in zip(val, yval, strict=True):
        if metric == "euclidean":
            dist = np.linalg.norm(train - x, axis=1)
        else:
            dist = 1 - train @ x / np.linalg.norm(train, axis=1) / np.linalg.norm(x)
        match = ytrain == y
        for perm in itertools.permutations(range(n)):
            before: list[int] = []
            for i in perm:
                values[i] += knn_utility(before + [i], dist, match, k) - knn_utility(before, dist, match, k)
                before.append(i)
    return values / math.factorial(n) / len(val)


@pytest.mark.parametrize(
    ("k", "metric", "seed"), [(1, "euclidean", 0), (3, "euclidean", 1), (3, "cosine", 2), (8, "cosine", 3)]
)
def test_knn_shapley_equals_brute_force_over_all_permutations(k: int, metric: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    train, ytrain = rng.normal(size=(6, 3)), rng.integers(0, 2, size=6)
    val, yval = rng.normal(size=(4, 3)), rng.integers(0, 2, size=4)
    expected = brute_force_shapley(train, ytrain, val, yval, k, metric)
    np.testing.assert_allclose(knn_shapley(train, ytrain, val, yval, k=k, metric=metric), expected, atol=1e-12)


def test_knn_shapley_blocks_do_not_change_the_result_and_values_sum_to_the_utility() -> None:
    rng = np.random.default_rng(5)
    train, ytrain = rng.normal(size=(50, 4)), rng.integers(0, 3, size=50)
    val, yval = rng.normal(size=(20, 4)), rng.integers(0, 3, size=20)
    whole = knn_shapley(train, ytrain, val, yval, k=5)
    np.testing.assert_allclose(knn_shapley(train, ytrain, val, yval, k=5, block_elements=60), whole, atol=1e-12)
    dist = (
        1
        - (val / np.linalg.norm(val, axis=1, keepdims=True)) @ (train / np.linalg.norm(train, axis=1, keepdims=True)).T
    )
    utility = np.mean(
        [(ytrain[np.argsort(d, kind="stable")[:5]] == y).sum() / 5 for d, y in zip(dist, yval, strict=True)]
    )
    assert whole.sum() == pytest.approx(utility)


def test_mislabeled_record_gets_negative_value() -> None:
    rng = np.random.default_rng(0)
    centers = np.array([[5.0, 0.0], [-5.0, 0.0]])
    ytrain = rng.integers(0, 2, size=40)
    train = centers[ytrain] + rng.normal(size=(40, 2))
    yval = rng.integers(0, 2, size=30)
    val = centers[yval] + rng.normal(size=(30, 2))
    ytrain[0] = 1 - ytrain[0]
    values = knn_shapley(train, ytrain, val, yval, k=5, metric="euclidean")
    assert values[0] < 0 < np.median(values)


def test_knn_shapley_rejects_empty_inputs() -> None:
    with pytest.raises(ValueError, match="training set is empty"):
        knn_shapley(np.zeros((0, 2)), np.zeros(0), np.ones((1, 2)), np.zeros(1))
    with pytest.raises(ValueError, match="validation set is empty"):
        knn_shapley(np.ones((1, 2)), np.zeros(1), np.zeros((0, 2)), np.zeros(0))
    with pytest.raises(ValueError, match="metric"):
        knn_shapley(np.ones((1, 2)), np.zeros(1), np.ones((1, 2)), np.zeros(1), metric="manhattan")


def test_representation_similarity_scores_and_top_k_agree() -> None:
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(30, 8)), rng.normal(size=(4, 8))
    scores = representation_similarity(train, test)
    assert isinstance(scores, np.ndarray) and scores.shape == (4, 30)
    top = representation_similarity(train, test, 5)
    assert isinstance(top, TopK)
    np.testing.assert_array_equal(top.indices, np.argsort(-scores, axis=1, kind="stable")[:, :5])


def test_collapse_duplicates_credits_each_cluster_once_to_its_earliest_member() -> None:
    scores = np.array([[1.0, 2.0, 3.0, 4.0, 5.0], [0.0, 1.0, 0.0, 1.0, 0.0]])
    clusters = np.array([7, 3, 7, 3, 9])
    collapsed = collapse_duplicates(scores, clusters)
    np.testing.assert_allclose(collapsed, [[2.0, 3.0, 0.0, 0.0, 5.0], [0.0, 1.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(collapse_duplicates(scores[0], clusters), collapsed[0])
    with pytest.raises(ValueError, match="cluster_of"):
        collapse_duplicates(scores, clusters[:3])
