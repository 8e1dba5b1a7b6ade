"""dattri: explicit-Hessian influence functions (IFAttributorExplicit) and TRAK (TRAKAttributor), argv[4] picks."""

from __future__ import annotations

import sys

import numpy as np
import torch
from _harness import run
from dattri.algorithm.influence_function import IFAttributorExplicit
from dattri.algorithm.trak import TRAKAttributor
from dattri.task import AttributionTask
from torch.utils.data import DataLoader, TensorDataset

METHOD = sys.argv[4] if len(sys.argv) > 4 else "if"


def compute(model: torch.nn.Module, data: dict[str, torch.Tensor], kind: str) -> np.ndarray:
    def loss_func(params: dict[str, torch.Tensor], batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        # dattri calls this per example (under vmap) and on whole batches (for the explicit Hessian).
        x, y = batch
        out = torch.func.functional_call(model, params, x)
        return torch.nn.functional.cross_entropy(out, y)

    def correct_probability(params: dict[str, torch.Tensor], batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        out = torch.func.functional_call(model, params, x.unsqueeze(0))
        return torch.exp(-torch.nn.functional.cross_entropy(out, y.unsqueeze(0)))

    task = AttributionTask(loss_func=loss_func, model=model, checkpoints=model.state_dict())
    train = DataLoader(TensorDataset(data["x_train"], data["y_train"]), batch_size=100, shuffle=False)
    test = DataLoader(TensorDataset(data["x_lds"], data["y_lds"]), batch_size=100, shuffle=False)
    if METHOD == "if":
        attributor = IFAttributorExplicit(task=task, device="cpu", regularization=0.01)
    else:
        attributor = TRAKAttributor(
            task=task,
            correct_probability_func=correct_probability,
            device="cpu",
            projector_kwargs={"proj_dim": 512, "device": "cpu"},
            regularization=0.01,
        )
    attributor.cache(train)
    scores = attributor.attribute(train, test) if METHOD == "if" else attributor.attribute(test)
    return scores.detach().numpy().T


if __name__ == "__main__":
    run(compute)
