"""Models, training and the shared data file for the digits benchmarks.

Imported both by the benchmark (in the project's venv) and by the reference runners (each in its own venv), so it
depends on torch and numpy only; sklearn is used once, in `prepare`, to read the digits data set it ships.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parents[1] / "out"
MODEL_KINDS = ("logreg", "mlp")
L2 = 1e-3


def make_model(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)  # one initialization for every retrain: LDS then measures data effects, not init noise
    if kind == "logreg":
        return torch.nn.Linear(64, 10)
    if kind == "mlp":
        return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10))
    raise ValueError(kind)


def per_example_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(outputs, targets, reduction="none")


def train(kind: str, x: torch.Tensor, y: torch.Tensor, *, steps: int = 300) -> torch.nn.Module:
    """Full-batch training to (near) convergence: Adam with L2, deterministic."""
    model = make_model(kind)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(steps):
        opt.zero_grad()
        loss = per_example_loss(model(x), y).mean() + L2 * sum((p**2).sum() for p in model.parameters())
        loss.backward()
        opt.step()
    model.eval()
    return model


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return (
        f"{platform.platform()}; CPU {cpu}; {os.cpu_count()} cores; torch {torch.__version__}; numpy {np.__version__}"
    )


def load_digits_split(seed: int = 0, n_train: int = 1000) -> dict[str, torch.Tensor]:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = data.data.astype(np.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-3)
    y = data.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    tr, te = order[:n_train], order[n_train:]
    return {
        "x_train": torch.from_numpy(x[tr]),
        "y_train": torch.from_numpy(y[tr]),
        "x_test": torch.from_numpy(x[te]),
        "y_test": torch.from_numpy(y[te]),
    }
