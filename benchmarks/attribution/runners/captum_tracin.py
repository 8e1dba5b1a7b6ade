"""captum: TracInCP (gradient dot products summed over checkpoints; here the final checkpoint)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from _harness import run
from captum.influence import TracInCP
from torch.utils.data import TensorDataset


def compute(model: torch.nn.Module, data: dict[str, torch.Tensor], kind: str) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = str(Path(tmp) / "final.pt")
        torch.save(model.state_dict(), checkpoint)

        def load(m: torch.nn.Module, path: str) -> float:
            m.load_state_dict(torch.load(path, weights_only=True))
            return 1.0

        tracin = TracInCP(
            model,
            TensorDataset(data["x_train"], data["y_train"]),
            [checkpoint],
            checkpoints_load_func=load,
            loss_fn=torch.nn.CrossEntropyLoss(reduction="sum"),
            batch_size=100,
            sample_wise_grads_per_batch=True,
        )
        scores = tracin.influence((data["x_lds"], data["y_lds"]), show_progress=False)
    return scores.detach().numpy()


if __name__ == "__main__":
    run(compute)
