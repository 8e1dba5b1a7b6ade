"""pyDVL: influence functions with the exact (direct) Hessian solve, DirectInfluence."""

from __future__ import annotations

import numpy as np
import torch
from _harness import run
from pydvl.influence.torch import DirectInfluence
from torch.utils.data import DataLoader, TensorDataset


def compute(model: torch.nn.Module, data: dict[str, torch.Tensor], kind: str) -> np.ndarray:
    loader = DataLoader(TensorDataset(data["x_train"], data["y_train"]), batch_size=100, shuffle=False)
    influence = DirectInfluence(model, torch.nn.functional.cross_entropy, regularization=0.01).fit(loader)
    scores = influence.influences(data["x_lds"], data["y_lds"], data["x_train"], data["y_train"])
    return scores.detach().numpy()


if __name__ == "__main__":
    run(compute)
