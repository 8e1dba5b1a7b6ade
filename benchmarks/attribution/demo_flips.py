"""The demo's planted label flips: how they are chosen, and how well each valuation signal finds them.

Selection (prints the line numbers that demo/loader.py keeps in PLANTED_LINES): bob's file is the second half of
the package's 600 training reviews. Among its polar reviews (positive or negative), not duplicated elsewhere, we take
the 12 whose label a sentiment model trained only on the package's separate test split (379 reviews) is most sure
of: reviews whose sentiment is unmistakable, so flipping them is a clear mislabel rather than a judgement call.
The test split never enters the demo Datanet, so the chooser is independent of every model the platform trains.

Detection: with those 12 labels flipped, every signal the epoch valuation computes ranks the 600 training reviews,
and we report ROC-AUC and how many planted flips fall in the worst 5% and 10%: KNN-Shapley (k=5, low first) against
the test split as validation, self-influence of a Linear head (exact Fisher, damping 1.0, as the platform builds it),
training loss, and the cross-fitted margin (attribution.engine.crossfit, 10 folds). The same run lists, as a
reference, a random choice of 12 polar flips (the earlier demo picked every 12th polar review).
Usage: python benchmarks/attribution/demo_flips.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import digits
import reviews

from attribution.engine import GradientIndex, knn_shapley
from attribution.engine.crossfit import _fit_softmax, cross_fit

OUT = digits.OUT / "demo_flips"
N_FLIPS = 12
HALF = 300  # alice holds the first 300 training reviews, bob the rest


def embeddings() -> dict[str, np.ndarray]:
    path = OUT / "emb.npz"
    if path.exists():
        return dict(np.load(path))
    reviews.setup_django()
    from demo.loader import LABELS, drug_reviews

    data: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        rows = drug_reviews(split)
        texts = [r["text"] for r in rows]
        data[f"x_{split}"] = reviews.encode(texts, 128).numpy()
        data[f"y_{split}"] = np.array([LABELS.index(r["label"]) for r in rows])
        data[f"dup_{split}"] = np.array([texts.index(t) != i for i, t in enumerate(texts)])
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez(path, **data)
    return data


def choose(data: dict[str, np.ndarray]) -> np.ndarray:
    """Indices (into the 600 training reviews) of the 12 clearest polar reviews in bob's half."""
    x_test = torch.from_numpy(data["x_test"].astype(np.float64))
    chooser = _fit_softmax(x_test, torch.from_numpy(data["y_test"]), 3, 1e-4, 200)
    with torch.no_grad():
        probs = torch.softmax(chooser(torch.from_numpy(data["x_train"].astype(np.float64))), dim=1).numpy()
    y = data["y_train"]
    sure = probs[np.arange(len(y)), y]
    candidates = [i for i in np.argsort(-sure) if i >= HALF and y[i] != 1 and not data["dup_train"][i]]
    return np.sort(np.array(candidates[:N_FLIPS]))


def flip(y: np.ndarray, rows: np.ndarray) -> np.ndarray:
    out = y.copy()
    out[rows] = 2 - out[rows]  # negative (0) <-> positive (2)
    return out


def train_head(x: torch.Tensor, y: torch.Tensor) -> torch.nn.Module:
    return _fit_softmax(x.double(), y, 3, 1e-4, 300).float()


def signals(data: dict[str, np.ndarray], y: np.ndarray) -> dict[str, tuple[np.ndarray, float]]:
    x = data["x_train"]
    out: dict[str, tuple[np.ndarray, float]] = {}
    t = time.perf_counter()
    values = knn_shapley(x, y, data["x_test"], data["y_test"], k=5)
    out["KNN-Shapley (k=5), low first"] = (-values, time.perf_counter() - t)
    t = time.perf_counter()
    xt, yt = torch.from_numpy(x).float(), torch.from_numpy(y)
    head = train_head(xt, yt)

    def ce(o: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(o, target, reduction="none")

    index = GradientIndex.build(head, ce, xt, yt, hessian="fisher", damping=1.0)
    out["self-influence (Fisher, damping 1.0)"] = (index.self_scores(), time.perf_counter() - t)
    with torch.no_grad():
        out["training loss"] = (ce(head(xt), yt).numpy(), 0.0)
    t = time.perf_counter()
    out["cross-fitted margin (10 folds)"] = (cross_fit(x, y).margin, time.perf_counter() - t)
    return out


def main() -> None:
    from sklearn.metrics import roc_auc_score

    torch.set_num_threads(1)
    print(f"machine: {digits.machine()}")
    started = time.perf_counter()
    data = embeddings()
    print(f"embeddings: {time.perf_counter() - started:.1f} s")
    chosen = choose(data)
    print(f"PLANTED_LINES (1-based lines of bob-reviews.jsonl): {tuple(int(i) - HALF + 1 for i in chosen)}")
    rng = np.random.default_rng(0)
    polar = np.flatnonzero((data["y_train"] != 1) & (np.arange(len(data["y_train"])) >= HALF))
    choices = {"clear (demo)": chosen, "random polar": np.sort(rng.choice(polar, N_FLIPS, replace=False))}
    n = len(data["y_train"])
    print(f"\n| flips | signal | ROC-AUC | planted in worst 5% ({n // 20}) | in worst 10% ({n // 10}) | seconds |")
    print("|---|---|---:|---:|---:|---:|")
    for name, rows in choices.items():
        y = flip(data["y_train"], rows)
        truth = np.zeros(n, dtype=bool)
        truth[rows] = True
        for label, (score, seconds) in signals(data, y).items():
            order = np.argsort(-score)
            print(
                f"| {name} | {label} | {roc_auc_score(truth, score):.3f} | {int(truth[order[: n // 20]].sum())}/"
                f"{N_FLIPS} | {int(truth[order[: n // 10]].sum())}/{N_FLIPS} | {seconds:.2f} |"
            )


if __name__ == "__main__":
    main()
