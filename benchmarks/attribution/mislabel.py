"""Mislabel detection on sklearn digits: flip 10% of training labels, rank records by self-influence (high first)
and by KNN-Shapley (low first), report ROC-AUC against the flipped set. Baseline row: rank by training loss.
Usage: python benchmarks/attribution/mislabel.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import digits
from lds import preload_torch_func

from attribution.engine import GradientIndex, cross_fit, knn_shapley

SELF_INFLUENCE: dict[str, dict[str, object]] = {
    "empirical Gram, damping 1.0": {"hessian": "empirical", "damping": 1.0},
    "empirical Gram, damping 0.1": {"hessian": "empirical", "damping": 0.1},
    "hessian='auto' (exact), damping 1.0 (the platform's setting)": {"hessian": "auto", "damping": 1.0},
}


def flip_labels(y: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(y), int(round(fraction * len(y))), replace=False)
    noisy = y.clone()
    noisy[flipped] = torch.from_numpy((y[flipped].numpy() + rng.integers(1, 10, len(flipped))) % 10)
    mask = np.zeros(len(y), dtype=bool)
    mask[flipped] = True
    return noisy, mask


def hidden(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model[1](model[0](x)).numpy() if isinstance(model, torch.nn.Sequential) else x.numpy()


def main() -> None:
    torch.set_num_threads(1)
    preload_torch_func()
    print(f"machine: {digits.machine()}")
    split = digits.load_digits_split()
    rows: list[dict[str, object]] = []
    for seed in (0, 1, 2):
        noisy, mask = flip_labels(split["y_train"], 0.10, seed)
        x_val, y_val = split["x_test"][:300], split["y_test"][:300]
        for kind in digits.MODEL_KINDS:
            model = digits.train(kind, split["x_train"], noisy)
            with torch.no_grad():
                loss = digits.per_example_loss(model(split["x_train"]), noisy).numpy()
            rows.append(
                {
                    "seed": seed,
                    "model": kind,
                    "method": "training loss (baseline)",
                    "auc": roc_auc_score(mask, loss),
                    "seconds": 0.0,
                }
            )
            for label, options in SELF_INFLUENCE.items():
                started = time.perf_counter()
                index = GradientIndex.build(model, digits.per_example_loss, split["x_train"], noisy, **options)
                self_influence = index.self_scores()
                rows.append(
                    {
                        "seed": seed,
                        "model": kind,
                        "method": f"ours self-influence, {label}",
                        "auc": roc_auc_score(mask, self_influence),
                        "seconds": time.perf_counter() - started,
                    }
                )
            embed = f"{kind} hidden layer" if kind == "mlp" else "standardized pixels"
            started = time.perf_counter()
            values = knn_shapley(
                hidden(model, split["x_train"]), noisy.numpy(), hidden(model, x_val), y_val.numpy(), k=10
            )
            rows.append(
                {
                    "seed": seed,
                    "model": kind,
                    "method": f"ours KNN-Shapley k=10 ({embed})",
                    "auc": roc_auc_score(mask, -values),
                    "seconds": time.perf_counter() - started,
                    "flipped_nonpositive": float((values[mask] <= 0).mean()),
                }
            )
            # The platform's third signal: a softmax model fit without the record (10 folds) on the same features.
            started = time.perf_counter()
            margin = cross_fit(hidden(model, split["x_train"]), noisy.numpy(), n_classes=10).margin
            rows.append(
                {
                    "seed": seed,
                    "model": kind,
                    "method": f"ours cross-fitted margin, 10 folds ({embed})",
                    "auc": roc_auc_score(mask, margin),
                    "seconds": time.perf_counter() - started,
                }
            )
    out = digits.OUT / "mislabel.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    print("\n| model | method | ROC-AUC mean (min) over 3 flips | wall s | flipped records valued <= 0 |")
    print("|---|---|---:|---:|---:|")
    for kind in digits.MODEL_KINDS:
        for method in dict.fromkeys(r["method"] for r in rows if r["model"] == kind):
            sel = [r for r in rows if r["model"] == kind and r["method"] == method]
            aucs = [float(r["auc"]) for r in sel]
            nonpos = [float(r["flipped_nonpositive"]) for r in sel if "flipped_nonpositive" in r]
            print(
                f"| {kind} | {method} | {np.mean(aucs):.4f} ({min(aucs):.4f}) | "
                f"{np.mean([float(r['seconds']) for r in sel]):.2f} | "
                f"{f'{np.mean(nonpos):.3f}' if nonpos else '-'} |"
            )


if __name__ == "__main__":
    main()
