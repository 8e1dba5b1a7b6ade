"""LDS of our gradient index on a linear classifier head over MiniLM embeddings of the demo drug reviews.

500 training / 100 test reviews (seeded sample of the demo package's train / test splits), mean-pooled MiniLM
embeddings (cached in benchmarks/out/lds/reviews_emb.pt), a Linear(384, 3) head trained full-batch with L-BFGS on
mean cross-entropy + L2 (strictly convex, so every retrain reaches the same optimum). Ground truth: the head
retrained on random 50% subsets. The reference libraries of lds.py run on the same head, data and subsets (their
runners see a Linear(384, 3) model on embedding tensors); --ours skips them.
Usage: python benchmarks/attribution/lds_reviews.py [--subsets N] [--ours]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import digits
import reviews
from lds import REFERENCES, lds, preload_torch_func, print_table, reference

from attribution.engine import GradientIndex

OUT = digits.OUT / "lds"
L2 = 1e-3
N_TRAIN, N_TEST, MAX_LENGTH = 500, 100, 256
KIND = "reviews_head"


def per_example_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(logits, y, reduction="none")


def embeddings(path: Path) -> dict[str, torch.Tensor]:
    if path.exists():
        return torch.load(path, weights_only=True)
    reviews.setup_django()
    from demo.loader import LABELS, drug_reviews

    rng = np.random.default_rng(0)
    data: dict[str, torch.Tensor] = {}
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        rows = drug_reviews(split)
        picked = [rows[i] for i in np.sort(rng.choice(len(rows), n, replace=False))]
        data[f"x_{split}"] = reviews.encode([r["text"] for r in picked], MAX_LENGTH)
        data[f"y_{split}"] = torch.tensor([LABELS.index(r["label"]) for r in picked])
    torch.save(data, path)
    return data


def train(x: torch.Tensor, y: torch.Tensor) -> torch.nn.Module:
    torch.manual_seed(0)
    head = torch.nn.Linear(x.shape[1], int(y.max()) + 1)
    opt = torch.optim.LBFGS(
        head.parameters(),
        lr=1.0,
        max_iter=500,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = per_example_loss(head(x), y).mean() + L2 * sum((p**2).sum() for p in head.parameters())
        loss.backward()
        return loss

    opt.step(closure)
    return head


def main() -> None:
    torch.set_num_threads(1)
    preload_torch_func()
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"machine: {digits.machine()}")
    n_subsets = int(sys.argv[sys.argv.index("--subsets") + 1]) if "--subsets" in sys.argv else 100
    started = time.perf_counter()
    data = embeddings(OUT / "reviews_emb.pt")
    print(f"embeddings: {time.perf_counter() - started:.1f} s")
    x, y, xt, yt = data["x_train"], data["y_train"], data["x_test"], data["y_test"]
    started = time.perf_counter()
    head = train(x, y)
    with torch.no_grad():
        acc = float((head(xt).argmax(1) == yt).float().mean())
    rng = np.random.default_rng(1)
    subsets = np.stack([np.sort(rng.choice(len(x), len(x) // 2, replace=False)) for _ in range(n_subsets)])
    losses = []
    for s in subsets:
        sub = train(x[s], y[s])
        with torch.no_grad():
            losses.append(per_example_loss(sub(xt), yt).numpy())
    gt = np.stack(losses)
    n_params = sum(p.numel() for p in head.parameters())
    print(
        f"head: {n_params} params, test accuracy {acc:.3f}, labels {np.bincount(y.numpy()).tolist()}; "
        f"ground truth: {n_subsets} retrains in {time.perf_counter() - started:.1f} s"
    )
    grid: list[dict[str, object]] = [
        {"projection": "rademacher", "proj_dim": 1024, "damping": 0.1, "hessian": "fisher"},
        {"projection": "rademacher", "proj_dim": 256, "damping": 0.1, "hessian": "fisher"},
        {"projection": "none", "damping": 1.0, "hessian": "empirical"},
    ]
    grid += [{"projection": "none", "damping": d, "hessian": "fisher"} for d in (0.01, 0.1, 0.3, 1.0, 3.0)]
    grid += [{"projection": "none", "damping": d, "hessian": "exact"} for d in (0.1, 1.0)]
    rows: list[dict[str, object]] = []
    note = f"{n_params} params"
    for options in grid:
        t0 = time.perf_counter()
        index = GradientIndex.build(head, per_example_loss, x, y, **options)
        scores = index.scores(xt, yt)
        seconds = time.perf_counter() - t0
        proj = "no proj" if options["projection"] == "none" else f"proj {options['proj_dim']}"
        label = f"ours {options['hessian']} {proj} damping {options['damping']}"
        if options["hessian"] == "exact" and options["damping"] == 1.0:
            label += " (hessian='auto', the platform's setting)"
        rows.append({"model": KIND, "method": label, "lds": lds(scores, subsets, gt), "seconds": seconds, "note": note})
    # The head's true Hessian is the Fisher plus the L2 term: in the index's summed-loss units lambda = 2 * L2 * n.
    index = GradientIndex.build(head, per_example_loss, x, y, projection="none", hessian="fisher", damping=1.0)
    d = 2 * L2 * len(x) / index.meta["lambdas"][0]
    t0 = time.perf_counter()
    index = GradientIndex.build(head, per_example_loss, x, y, projection="none", hessian="fisher", damping=d)
    scores = index.scores(xt, yt)
    rows.append(
        {
            "model": KIND,
            "method": f"ours fisher no proj damping {d:.3g} (= the training L2, exact influence)",
            "lds": lds(scores, subsets, gt),
            "seconds": time.perf_counter() - t0,
            "note": note,
        }
    )
    if "--ours" not in sys.argv:
        data_path = OUT / "reviews_lds.pt"
        shared = {"x_train": x, "y_train": y, "x_lds": xt, "y_lds": yt, f"state_{KIND}": head.state_dict()}
        torch.save({**shared, "subsets": torch.from_numpy(subsets)}, data_path)
        for label, env, runner, extra in REFERENCES:
            scores_ref, seconds, info = reference(label, env, runner, extra, data_path, KIND)
            value = lds(scores_ref, subsets, gt) if scores_ref is not None else float("nan")
            rows.append({"model": KIND, "method": label, "lds": value, "seconds": seconds, "note": info})
    (OUT / "lds_reviews.json").write_text(json.dumps(rows, indent=1))
    print_table(rows, (KIND,))


if __name__ == "__main__":
    main()
