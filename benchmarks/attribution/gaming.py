"""Gaming resistance on sklearn digits (logistic regression and MLP).

1. Duplicates: a group of 20 records is uploaded 5 more times; the model is retrained and re-indexed. We report the
   group's share of positive attribution credit (per test query, positive scores normalized to sum to one, as in a
   receipt) and its total KNN-Shapley value, before and after, raw, with `collapse_duplicates`, and deduped before
   indexing (what the platform does: records are clustered by an exact content hash, and the gradient index and the
   KNN-Shapley values cover one representative per cluster). Two variants: the model trained on the raw upload,
   copies included (only the index is deduped), and the training snapshot deduped as well.
2. Poison: 50 copies of training images with wrong labels are injected; their KNN-Shapley values should be <= 0.
Usage: python benchmarks/attribution/gaming.py
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import digits  # noqa: E402

from attribution.engine import GradientIndex, collapse_duplicates, knn_shapley  # noqa: E402


def receipt_shares(scores: np.ndarray) -> np.ndarray:
    positive = np.clip(scores, 0.0, None)
    totals = positive.sum(axis=1, keepdims=True)
    return positive / np.where(totals > 0, totals, 1.0)


def embed(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model[1](model[0](x)).numpy() if isinstance(model, torch.nn.Sequential) else x.numpy()


def content_clusters(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Cluster id per record: records with byte-identical inputs and label share one (the earliest's index)."""
    first: dict[str, int] = {}
    out = np.empty(len(x), dtype=np.int64)
    xs, ys = x.numpy(), y.numpy()
    for i in range(len(x)):
        key = hashlib.sha256(xs[i].tobytes() + ys[i].tobytes()).hexdigest()
        out[i] = first.setdefault(key, i)
    return out


def measure_deduped(
    kind: str,
    x: torch.Tensor,
    y: torch.Tensor,
    group: np.ndarray,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    *,
    train_deduped: bool = False,
) -> dict[str, float]:
    """Index and value one representative per exact-content cluster; train on everything uploaded, or
    (``train_deduped``) on the representatives too."""
    reps = np.unique(content_clusters(x, y))  # the earliest member of each cluster
    xr, yr = x[reps], y[reps]
    model = digits.train(kind, xr, yr) if train_deduped else digits.train(kind, x, y)
    suffix = "deduped_train" if train_deduped else "deduped"
    index = GradientIndex.build(model, digits.per_example_loss, xr, yr, hessian="fisher", damping=0.1)
    in_group = np.isin(reps, group)
    values = knn_shapley(embed(model, xr), yr.numpy(), embed(model, x_test), y_test.numpy(), k=10)
    return {
        f"gradient_share_{suffix}": float(receipt_shares(index.scores(x_test, y_test))[:, in_group].sum(1).mean()),
        f"knn_value_{suffix}": float(values[in_group].sum()),
        "indexed_records": float(len(reps)),
    }


def measure(
    kind: str,
    x: torch.Tensor,
    y: torch.Tensor,
    clusters: np.ndarray,
    group: np.ndarray,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
) -> dict[str, float]:
    model = digits.train(kind, x, y)
    index = GradientIndex.build(model, digits.per_example_loss, x, y, hessian="fisher", damping=0.1)
    scores = index.scores(x_test, y_test)
    in_group = np.isin(clusters, group)
    values = knn_shapley(embed(model, x), y.numpy(), embed(model, x_test), y_test.numpy(), k=10)
    return {
        "gradient_share_raw": float(receipt_shares(scores)[:, in_group].sum(axis=1).mean()),
        "gradient_share_collapsed": float(
            receipt_shares(collapse_duplicates(scores, clusters))[:, in_group].sum(1).mean()
        ),
        "knn_value_raw": float(values[in_group].sum()),
        "knn_value_collapsed": float(collapse_duplicates(values, clusters)[in_group].sum()),
    }


def main() -> None:
    torch.set_num_threads(1)
    print(f"machine: {digits.machine()}")
    split = digits.load_digits_split()
    x, y = split["x_train"], split["y_train"]
    x_test, y_test = split["x_test"][:300], split["y_test"][:300]
    rng = np.random.default_rng(0)
    group = rng.choice(len(x), 20, replace=False)
    clusters = np.arange(len(x))
    copies = np.tile(group, 5)
    x_dup, y_dup = torch.cat([x, x[copies]]), torch.cat([y, y[copies]])
    clusters_dup = np.concatenate([clusters, clusters[copies]])
    rows: dict[str, dict[str, float]] = {}
    for kind in digits.MODEL_KINDS:
        before = measure(kind, x, y, clusters, group, x_test, y_test)
        after = measure(kind, x_dup, y_dup, clusters_dup, group, x_test, y_test)
        before |= measure_deduped(kind, x, y, group, x_test, y_test)
        after |= measure_deduped(kind, x_dup, y_dup, group, x_test, y_test)
        after |= measure_deduped(kind, x_dup, y_dup, group, x_test, y_test, train_deduped=True)
        rows[kind] = {f"before_{k}": v for k, v in before.items()} | {f"after_{k}": v for k, v in after.items()}
        poison = rng.choice(len(x), 50, replace=False)
        x_p = torch.cat([x, x[poison]])
        y_p = torch.cat([y, (y[poison] + torch.from_numpy(rng.integers(1, 10, 50))) % 10])
        model = digits.train(kind, x_p, y_p)
        values = knn_shapley(embed(model, x_p), y_p.numpy(), embed(model, x_test), y_test.numpy(), k=10)
        index = GradientIndex.build(model, digits.per_example_loss, x_p, y_p, hessian="fisher", damping=0.1)
        shares = receipt_shares(index.scores(x_test, y_test))
        rows[kind] |= {
            "poison_knn_nonpositive_fraction": float((values[len(x) :] <= 0).mean()),
            "poison_knn_mean_value": float(values[len(x) :].mean()),
            "clean_knn_mean_value": float(values[: len(x)].mean()),
            "poison_gradient_share_total": float(shares[:, len(x) :].sum(axis=1).mean()),
            "poison_fraction_of_records": 50 / len(x_p),
        }
    out = digits.OUT / "gaming.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    print(
        "\n| model | measure | before copies | after 5 copies, raw | raw / before | after, collapsed | "
        "collapsed / before | after, index deduped | / before | after, training and index deduped | / before |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for kind, r in rows.items():
        for name, label in (("gradient_share", "group share of receipt credit"), ("knn_value", "group KNN-Shapley")):
            # "before" is the same measurement for every column: no copies exist, so all three ways agree.
            before = r[f"before_{name}_deduped"]
            raw, collapsed, deduped, both = (
                r[f"after_{name}_{v}"] for v in ("raw", "collapsed", "deduped", "deduped_train")
            )
            print(
                f"| {kind} | {label} | {before:.4f} | {raw:.4f} | {raw / before:.2f}x | {collapsed:.4f} | "
                f"{collapsed / before:.2f}x | {deduped:.4f} | {deduped / before:.2f}x | {both:.4f} | "
                f"{both / before:.2f}x |"
            )
    print(
        "\n| model | injected flipped records valued <= 0 | their mean KNN value | clean mean | "
        "their share of receipt credit (they are 4.8% of records) |"
    )
    print("|---|---:|---:|---:|---:|")
    for kind, r in rows.items():
        print(
            f"| {kind} | {r['poison_knn_nonpositive_fraction']:.3f} | {r['poison_knn_mean_value']:.5f} | "
            f"{r['clean_knn_mean_value']:.5f} | {r['poison_gradient_share_total']:.4f} |"
        )


if __name__ == "__main__":
    main()
