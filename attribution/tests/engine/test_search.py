from __future__ import annotations

import numpy as np
import pytest
import torch

from attribution.engine import GradientIndex, IVFIndex, SQ8Index, top_k_inner_product


def test_single_query_numpy_path_matches_batched_torch_path() -> None:
    rng = np.random.default_rng(0)
    features = rng.standard_normal((500, 16)).astype(np.float32)
    queries = rng.standard_normal((3, 16)).astype(np.float32)
    batched = top_k_inner_product(queries, features, 7, block_rows=128)
    for row in range(3):
        single = top_k_inner_product(queries[row : row + 1], features, 7, block_rows=128)
        np.testing.assert_array_equal(single.indices[0], batched.indices[row])
        np.testing.assert_allclose(single.scores[0], batched.scores[row], rtol=1e-5)


def test_ivf_with_every_list_probed_is_exact_and_scores_are_exact() -> None:
    rng = np.random.default_rng(1)
    features = rng.standard_normal((2000, 8)).astype(np.float32)
    queries = rng.standard_normal((4, 8)).astype(np.float32)
    ivf = IVFIndex(features, nlist=20)
    exact = top_k_inner_product(queries, features, 10)
    full = ivf.search(queries, 10, nprobe=20)
    np.testing.assert_array_equal(full.indices, exact.indices)
    partial = ivf.search(queries, 10, nprobe=2)
    np.testing.assert_allclose(partial.scores, np.take_along_axis(queries @ features.T, partial.indices, 1), rtol=1e-5)


def test_ivf_returns_k_rows_even_when_probed_lists_are_small() -> None:
    features = np.random.default_rng(2).standard_normal((300, 4)).astype(np.float32)
    ivf = IVFIndex(features, nlist=100)
    assert ivf.search(features[:2], 50, nprobe=1).indices.shape == (2, 50)


def test_calibration_reaches_the_recall_target() -> None:
    rng = np.random.default_rng(3)
    centers = rng.standard_normal((30, 12)) * 4
    features = (centers[rng.integers(0, 30, 5000)] + rng.standard_normal((5000, 12))).astype(np.float32)
    ivf = IVFIndex(features, nlist=64)
    stats = ivf.calibrate(features, features[:20], k=20, target=0.9)
    assert stats["recall"] >= 0.9 and ivf.nprobe == stats["nprobe"]


def test_gradient_index_approximate_option() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3)
    x, y = torch.randn(400, 5), torch.randint(0, 3, (400,))

    def loss(out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(out, t, reduction="none")

    index = GradientIndex.build(model, loss, x, y, proj_dim=8)
    exact = index.top_k(x[:5], y[:5], 10)  # "auto" is exact below APPROXIMATE_MIN_ROWS
    np.testing.assert_array_equal(exact.indices, index.top_k(x[:5], y[:5], 10, approximate=False).indices)
    approx = index.top_k(x[:5], y[:5], 10, approximate=True)
    assert approx.indices.shape == (5, 10) and index.approximate_calibration["recall"] >= 0.95
    with pytest.raises(ValueError, match="approximate"):
        index.search(np.zeros((1, 8), np.float32), 3, approximate="yes")


def test_sq8_index_scores_are_exact_and_recall_is_high() -> None:
    rng = np.random.default_rng(4)
    features = rng.standard_normal((3000, 20)).astype(np.float32)
    queries = rng.standard_normal((5, 20)).astype(np.float32)
    index = SQ8Index(features, candidates=200)
    found = index.search(queries, 10)
    np.testing.assert_allclose(found.scores, np.take_along_axis(queries @ features.T, found.indices, 1), rtol=1e-5)
    exact = top_k_inner_product(queries, features, 10)
    assert np.mean([len(np.intersect1d(a, b)) for a, b in zip(found.indices, exact.indices)]) >= 9.5
    everything = index.search(queries, 10, candidates=3000)
    np.testing.assert_array_equal(everything.indices, exact.indices)
    stats = index.calibrate(queries, k=10, target=0.99)
    assert stats["recall"] >= 0.99 and index.candidates == stats["candidates"]


def test_exact_search_orders_like_a_full_sort_with_ties_to_the_lower_row() -> None:
    rng = np.random.default_rng(5)
    features = rng.standard_normal((1000, 12)).astype(np.float32)
    features[700] = features[30]  # a tie across blocks: the lower row must come first
    queries = np.concatenate([features[30:31], rng.standard_normal((4, 12)).astype(np.float32)])
    found = top_k_inner_product(queries, features, 9, block_rows=256)
    scores = queries.astype(np.float64) @ features.T.astype(np.float64)
    for row in range(len(queries)):
        expected = np.lexsort((np.arange(1000), -scores[row]))[:9]
        np.testing.assert_array_equal(found.indices[row], expected)
    assert list(found.indices[0][:2]) == [30, 700]
    wide = top_k_inner_product(queries.astype(np.float64), features.astype(np.float64), 9, block_rows=256)
    np.testing.assert_array_equal(wide.indices, found.indices)


def test_sharded_sq8_index_finds_rows_in_every_shard() -> None:
    rng = np.random.default_rng(6)
    features = rng.standard_normal((4000, 16)).astype(np.float32)
    queries = rng.standard_normal((6, 16)).astype(np.float32)
    single = SQ8Index(features, candidates=4000, shards=1)
    sharded = SQ8Index(features, candidates=4000, shards=3)
    exact = top_k_inner_product(queries, features, 20)
    np.testing.assert_array_equal(sharded.search(queries, 20).indices, exact.indices)
    np.testing.assert_array_equal(single.search(queries, 20).indices, exact.indices)
    # The planted best row of each query sits in the last shard.
    features[3990:3996] = queries * 10
    planted = SQ8Index(features, candidates=64, shards=3).search(queries, 1).indices[:, 0]
    np.testing.assert_array_equal(planted, np.arange(3990, 3996))
