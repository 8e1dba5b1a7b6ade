from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from attribution.engine import GradientIndex, IndexMismatch
from attribution.engine.projection import BlockProjector


def bce(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.binary_cross_entropy_with_logits(outputs.squeeze(-1), targets, reduction="none")


def cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(outputs, targets, reduction="none")


def logistic_problem(n: int = 40, d: int = 5, seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = (x[:, 0] + 0.5 * torch.randn(n, generator=gen, dtype=torch.float64) > 0).to(torch.float64)
    model = torch.nn.Linear(d, 1).to(torch.float64)
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, d, generator=gen, dtype=torch.float64))
        model.bias.fill_(0.1)
    return model, x, y


def head_problem(n: int = 30, seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    model[0].requires_grad_(False)  # a frozen encoder with a trainable classifier head
    gen = torch.Generator().manual_seed(seed)
    return model, torch.randn(n, 6, generator=gen), torch.randint(0, 3, (n,), generator=gen)


def exact_influence(
    model: torch.nn.Linear, x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor
) -> np.ndarray:
    """g_q H^-1 g_i with the Gauss-Newton (empirical Fisher) Hessian H = G^T G, computed in closed form."""
    w = torch.cat([model.weight.detach().reshape(-1), model.bias.detach()]).numpy()

    def grads(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        xa = np.hstack([x.numpy(), np.ones((len(x), 1))])
        p = 1.0 / (1.0 + np.exp(-xa @ w))
        return (p - y.numpy())[:, None] * xa

    g_train, g_test = grads(x_train, y_train), grads(x_test, y_test)
    return g_test @ np.linalg.inv(g_train.T @ g_train) @ g_train.T


def test_scores_equal_exact_influence_when_projection_keeps_everything() -> None:
    model, x, y = logistic_problem()
    index = GradientIndex.build(
        model, bce, x[:30], y[:30], proj_dim=6, projection="rademacher", damping=1e-12, dtype=torch.float64
    )
    expected = exact_influence(model, x[:30], y[:30], x[30:], y[30:])
    np.testing.assert_allclose(index.scores(x[30:], y[30:]), expected, rtol=1e-6, atol=1e-9)


def test_larger_score_means_removing_the_record_raises_the_test_loss() -> None:
    model, x, y = logistic_problem(n=60)
    index = GradientIndex.build(
        model, bce, x[:50], y[:50], proj_dim=6, projection="rademacher", damping=1e-12, dtype=torch.float64
    )
    s = index.scores(x[50:51], y[50:51])[0]
    assert s.max() > 0 > s.min()
    helpful, harmful = int(s.argmax()), int(s.argmin())
    g = exact_influence(model, x[:50], y[:50], x[50:51], y[50:51])[0]
    assert g[helpful] == pytest.approx(s[helpful]) and g[harmful] == pytest.approx(s[harmful])


def test_top_k_matches_argsort_of_scores() -> None:
    model, x, y = head_problem(n=200)
    index = GradientIndex.build(model, cross_entropy, x[:180], y[:180], proj_dim=16)
    scores = index.scores(x[180:], y[180:])
    top = index.top_k(x[180:], y[180:], 7, block_rows=50)
    np.testing.assert_array_equal(top.indices, np.argsort(-scores, axis=1, kind="stable")[:, :7])
    np.testing.assert_allclose(top.scores, np.take_along_axis(scores, top.indices, 1), rtol=1e-5, atol=1e-6)


def test_only_trainable_parameters_are_indexed() -> None:
    model, x, y = head_problem()
    index = GradientIndex.build(model, cross_entropy, x, y, proj_dim=8)
    assert [name for name, _ in index.meta["blocks"]] == ["2.weight", "2.bias"]


def test_build_is_deterministic_given_the_seed(tmp_path: Path) -> None:
    model, x, y = head_problem()
    options = {"proj_dim": 8, "projection": "rademacher"}
    a = GradientIndex.build(model, cross_entropy, x, y, seed=3, batch_size=7, **options)
    b = GradientIndex.build(model, cross_entropy, x, y, seed=3, batch_size=30, **options)
    c = GradientIndex.build(model, cross_entropy, x, y, seed=4, **options)
    np.testing.assert_allclose(a.features, b.features, rtol=1e-5, atol=1e-7)
    assert not np.allclose(a.features, c.features)


def test_count_sketch_projection_is_deterministic_and_preserves_norms() -> None:
    model, x, y = head_problem(n=50)
    a = GradientIndex.build(model, cross_entropy, x, y, proj_dim=64, projection="countsketch")
    b = GradientIndex.build(model, cross_entropy, x, y, proj_dim=64, projection="countsketch")
    assert set(a.meta["blocks"][0][0:1]) == {"2.weight"}
    np.testing.assert_array_equal(a.features, b.features)
    exact = GradientIndex.build(model, cross_entropy, x, y, proj_dim=27, projection="rademacher")
    ratio = np.linalg.norm(a.features, axis=1) / np.linalg.norm(exact.features, axis=1)
    assert 0.5 < float(np.median(ratio)) < 1.5


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    model, x, y = head_problem()
    index = GradientIndex.build(model, cross_entropy, x[:20], y[:20], proj_dim=8)
    index.save(tmp_path / "idx")
    loaded = GradientIndex.load(tmp_path / "idx", model, cross_entropy)
    np.testing.assert_array_equal(loaded.scores(x[20:], y[20:]), index.scores(x[20:], y[20:]))
    np.testing.assert_array_equal(loaded.self_scores(), index.self_scores())
    mapped = GradientIndex.load(tmp_path / "idx", model, cross_entropy, mmap=True)
    np.testing.assert_array_equal(mapped.top_k(x[20:], y[20:], 3).indices, index.top_k(x[20:], y[20:], 3).indices)


def test_loaded_index_without_a_model_says_what_to_do(tmp_path: Path) -> None:
    model, x, y = head_problem()
    GradientIndex.build(model, cross_entropy, x, y, proj_dim=8).save(tmp_path / "idx")
    loaded = GradientIndex.load(tmp_path / "idx")
    assert loaded.self_scores().shape == (30,)
    with pytest.raises(ValueError, match="attach"):
        loaded.scores(x, y)
    with pytest.raises(FileNotFoundError):
        GradientIndex.load(tmp_path / "missing")


def test_changed_trainable_parameters_are_refused() -> None:
    model, x, y = head_problem()
    index = GradientIndex.build(model, cross_entropy, x, y, proj_dim=8)
    model[0].requires_grad_(True)
    with pytest.raises(IndexMismatch, match="names or shapes"):
        index.scores(x, y)
    model[0].requires_grad_(False)
    with torch.no_grad():
        model[2].bias.add_(0.1)
    with pytest.raises(IndexMismatch, match="weights changed"):
        index.top_k(x, y, 2)


@pytest.mark.parametrize("hessian", ["empirical", "fisher", "exact"])
def test_nan_gradient_records_are_reported_and_zeroed(hessian: str) -> None:
    model, x, y = head_problem()
    x = x.clone()
    x[4, 0] = float("nan")
    x[9] = float("inf")  # inf - inf inside the encoder: a NaN gradient
    index = GradientIndex.build(model, cross_entropy, x, y, proj_dim=8, hessian=hessian)
    assert np.isfinite(index.preconditioners).all()
    assert index.bad_records == [4, 9]
    assert not index.features[[4, 9]].any()
    assert np.isfinite(index.features).all()
    assert np.isfinite(index.scores(x[:3], y[:3])).all()


def test_single_record_training_set() -> None:
    model, x, y = head_problem()
    index = GradientIndex.build(model, cross_entropy, x[:1], y[:1], proj_dim=8)
    assert index.scores(x[1:4], y[1:4]).shape == (3, 1)
    assert index.top_k(x[1:4], y[1:4], 5).indices.shape == (3, 1)
    assert index.self_scores().shape == (1,)


def test_ensemble_averages_the_checkpoints_scores() -> None:
    first, x, y = head_problem(seed=0)
    second, _, _ = head_problem(seed=1)
    ensemble = GradientIndex.build(None, cross_entropy, x[:25], y[:25], models=[first, second], proj_dim=8)
    one = GradientIndex.build(first, cross_entropy, x[:25], y[:25], proj_dim=8)
    two = GradientIndex.build(second, cross_entropy, x[:25], y[:25], proj_dim=8)
    expected = (one.scores(x[25:], y[25:]) + two.scores(x[25:], y[25:])) / 2
    np.testing.assert_allclose(ensemble.scores(x[25:], y[25:]), expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ensemble.self_scores(), (one.self_scores() + two.self_scores()) / 2, rtol=1e-4)


def test_self_influence_is_the_diagonal_of_the_train_train_scores() -> None:
    model, x, y = head_problem()
    index = GradientIndex.build(model, cross_entropy, x, y, proj_dim=8)
    np.testing.assert_allclose(index.self_scores(), np.diag(index.scores(x, y)), rtol=1e-4, atol=1e-6)


def test_progress_is_reported() -> None:
    model, x, y = head_problem()
    calls: list[tuple[int, int]] = []
    GradientIndex.build(
        model, cross_entropy, x, y, proj_dim=8, batch_size=8, progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(8, 30), (16, 30), (24, 30), (30, 30)]


def test_loop_fallback_matches_vmap() -> None:
    model, x, y = head_problem()
    a = GradientIndex.build(model, cross_entropy, x, y, proj_dim=8, per_example="vmap")
    b = GradientIndex.build(model, cross_entropy, x, y, proj_dim=8, per_example="loop")
    np.testing.assert_allclose(a.features, b.features, rtol=1e-4, atol=1e-6)


def test_dict_inputs_are_passed_as_keyword_arguments() -> None:
    class Keyword(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = torch.nn.Linear(6, 3)

        def forward(self, features: torch.Tensor) -> torch.Tensor:
            return self.head(features)

    torch.manual_seed(0)
    model = Keyword()
    x, y = torch.randn(10, 6), torch.randint(0, 3, (10,))
    index = GradientIndex.build(model, cross_entropy, {"features": x}, y, proj_dim=8)
    assert index.scores({"features": x[:2]}, y[:2]).shape == (2, 10)


def test_bad_arguments_get_clear_errors() -> None:
    model, x, y = head_problem()
    with pytest.raises(ValueError, match="targets"):
        GradientIndex.build(model, cross_entropy, x, y[:5])
    with pytest.raises(ValueError, match="empty"):
        GradientIndex.build(model, cross_entropy, x[:0], y[:0])
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        GradientIndex.build(model, cross_entropy, x, y)


def test_fisher_preconditioner_is_the_gauss_newton_matrix_of_softmax_cross_entropy() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 4).to(torch.float64)
    x, y = torch.randn(20, 3, dtype=torch.float64), torch.randint(0, 4, (20,))
    index = GradientIndex.build(
        model,
        cross_entropy,
        x,
        y,
        proj_dim=16,
        projection="rademacher",
        damping=0.5,
        hessian="fisher",
        dtype=torch.float64,
    )
    p = torch.softmax(model(x), 1).detach().numpy()
    ggn = np.zeros((16, 16))
    for pi, xi in zip(p, x.numpy(), strict=True):
        jac = np.hstack([np.kron(np.eye(4), xi[None, :]), np.eye(4)])  # d logits / d (W row-major, b)
        ggn += jac.T @ (np.diag(pi) - np.outer(pi, pi)) @ jac
    projector = BlockProjector([("weight", (4, 3)), ("bias", (4,))], 16, 0, "rademacher", dtype=torch.float64)
    r = np.vstack([projector._dense["weight"].numpy(), projector._dense["bias"].numpy()])
    lam = index.meta["lambdas"][0]
    np.testing.assert_allclose(np.linalg.inv(index.preconditioners[0]), r.T @ ggn @ r + lam * np.eye(16), atol=1e-8)


def test_identity_projection_keeps_the_raw_gradients(tmp_path: Path) -> None:
    model, x, y = head_problem(n=40)  # 8 * 3 + 3 = 27 trainable parameters
    none = GradientIndex.build(model, cross_entropy, x[:30], y[:30], projection="none", hessian="fisher", seed=1)
    auto = GradientIndex.build(model, cross_entropy, x[:30], y[:30], proj_dim=8, hessian="fisher", seed=2, batch_size=7)
    assert none.dim == auto.dim == 27 and none.meta["projection"] == auto.meta["projection"] == "none"
    np.testing.assert_allclose(none.features, auto.features, rtol=1e-5, atol=1e-7)  # no seed dependence
    hidden = torch.tanh(model[0](x[:30])).detach()
    probs = torch.softmax(model(x[:30]), 1).detach()
    onehot = torch.nn.functional.one_hot(y[:30], 3).float()
    expected = torch.cat([((probs - onehot)[:, :, None] * hidden[:, None, :]).reshape(30, -1), probs - onehot], 1)
    np.testing.assert_allclose(none.features, expected.numpy(), rtol=1e-4, atol=1e-6)
    none.save(tmp_path / "idx")
    loaded = GradientIndex.load(tmp_path / "idx", model, cross_entropy)
    assert loaded.meta["projection"] == "none"
    np.testing.assert_array_equal(loaded.scores(x[30:], y[30:]), none.scores(x[30:], y[30:]))


def test_auto_projects_models_above_the_identity_threshold() -> None:
    from attribution.engine.projection import IDENTITY_MAX_PARAMS

    model = torch.nn.Linear(IDENTITY_MAX_PARAMS // 4, 4)  # just above the threshold (bias included)
    x, y = torch.randn(6, IDENTITY_MAX_PARAMS // 4), torch.randint(0, 4, (6,))
    index = GradientIndex.build(model, cross_entropy, x, y, proj_dim=16)
    assert index.dim == 16 and index.meta["projection"] == "auto"
    bigger_dim = GradientIndex.build(model, cross_entropy, x, y, proj_dim=IDENTITY_MAX_PARAMS + 4)
    assert bigger_dim.meta["projection"] == "none" and bigger_dim.dim == IDENTITY_MAX_PARAMS + 4
    with pytest.raises(ValueError, match="unknown projection"):
        GradientIndex.build(model, cross_entropy, x, y, projection="gaussian")
    with pytest.raises(ValueError, match="dim must be"):
        BlockProjector([("w", (2, 3))], 4, kind="none")


def brute_force_hessian(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Hessian of the summed loss over the trainable parameters (named_parameters order), by autograd."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    flat = torch.cat([p.detach().reshape(-1) for _, p in named])

    def loss(vector: torch.Tensor) -> torch.Tensor:
        params, offset = {}, 0
        for name, p in named:
            params[name] = vector[offset : offset + p.numel()].view(p.shape)
            offset += p.numel()
        return cross_entropy(torch.func.functional_call(model, params, (x,)), y).sum()

    return torch.autograd.functional.hessian(loss, flat).numpy()


def mlp_problem(n: int = 30, seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).to(torch.float64)
    gen = torch.Generator().manual_seed(seed)
    return model, torch.randn(n, 4, generator=gen, dtype=torch.float64), torch.randint(0, 3, (n,), generator=gen)


def test_exact_hessian_preconditioner_is_the_damped_inverse_hessian() -> None:
    model, x, y = mlp_problem(n=50)
    index = GradientIndex.build(
        model, cross_entropy, x[:40], y[:40], hessian="exact", damping=10.0, batch_size=7, dtype=torch.float64
    )
    hessian = brute_force_hessian(model, x[:40], y[:40])
    lam = index.meta["lambdas"][0]
    assert lam == pytest.approx(10.0 * np.trace(hessian) / len(hessian))
    # A hidden layer: the Hessian is not the (PSD) Gauss-Newton matrix, but lambda outweighs its negative curvature.
    assert -lam < np.linalg.eigvalsh(hessian).min() < 0
    assert index.meta["hessian"] == "exact" and index.dim == len(hessian) == 43
    np.testing.assert_allclose(np.linalg.inv(index.preconditioners[0]), hessian + lam * np.eye(43), atol=1e-8)
    g_train, g_test = index.features, index.query_vectors(x[40:], y[40:]) @ np.linalg.inv(index.preconditioners[0])
    expected = g_test @ np.linalg.solve(hessian + lam * np.eye(43), g_train.T)
    np.testing.assert_allclose(index.scores(x[40:], y[40:]), expected, rtol=1e-6, atol=1e-10)


def test_exact_hessian_clips_negative_curvature_stronger_than_the_damping() -> None:
    model, x, y = mlp_problem(n=40, seed=1)
    index = GradientIndex.build(model, cross_entropy, x, y, hessian="exact", damping=1e-3, dtype=torch.float64)
    hessian = brute_force_hessian(model, x, y)
    eigenvalues, vectors = np.linalg.eigh(hessian)
    lam = index.meta["lambdas"][0]
    assert eigenvalues.min() + lam < 0  # H + lambda I is indefinite: it must not be inverted as it is
    expected = (vectors / (np.clip(eigenvalues, 0.0, None) + lam)) @ vectors.T
    np.testing.assert_allclose(index.preconditioners[0], expected, rtol=1e-6, atol=1e-8)
    assert np.linalg.eigvalsh(index.preconditioners[0]).min() > 0
    assert (index.self_scores() >= 0).all()


def test_exact_hessian_of_a_linear_softmax_classifier_is_its_fisher() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 4).to(torch.float64)
    x, y = torch.randn(25, 3, dtype=torch.float64), torch.randint(0, 4, (25,))
    exact = GradientIndex.build(model, cross_entropy, x, y, hessian="exact", dtype=torch.float64)
    fisher = GradientIndex.build(model, cross_entropy, x, y, hessian="fisher", dtype=torch.float64)
    np.testing.assert_allclose(exact.preconditioners, fisher.preconditioners, rtol=1e-8, atol=1e-10)


def test_auto_hessian_picks_exact_fisher_or_empirical() -> None:
    model, x, y = mlp_problem()
    assert GradientIndex.build(model, cross_entropy, x, y).meta["hessian"] == "empirical"  # the default stays
    assert GradientIndex.build(model, cross_entropy, x, y, hessian="auto").meta["hessian"] == "exact"
    projected = {"hessian": "auto", "proj_dim": 8, "projection": "rademacher"}
    assert GradientIndex.build(model, cross_entropy, x, y, **projected).meta["hessian"] == "fisher"
    linear, xb, yb = logistic_problem()  # one output per record: no classes to take a Fisher over
    assert GradientIndex.build(linear, bce, xb, yb, **{**projected, "proj_dim": 4}).meta["hessian"] == "empirical"
    with pytest.raises(ValueError, match="needs the raw gradients"):
        GradientIndex.build(model, cross_entropy, x, y, hessian="exact", proj_dim=8, projection="rademacher")
    with pytest.raises(ValueError, match="unknown hessian"):
        GradientIndex.build(model, cross_entropy, x, y, hessian="gauss-newton")
