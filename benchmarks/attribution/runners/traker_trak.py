"""TRAK (the `traker` package, MadryLab) on CPU with its basic Rademacher projector.

On CPU traker's BasicScoreComputer inverts X^T X with no regularization, so the projection must be narrower than both
the parameter count and the number of training records (a wider one makes X^T X singular and the scores noise).
"""

from __future__ import annotations

import tempfile

import numpy as np
import torch
from _harness import run
from trak import TRAKer
from trak.projectors import BasicProjector, ProjectionType

MAX_PROJ_DIM = 512


def compute(model: torch.nn.Module, data: dict[str, torch.Tensor], kind: str) -> np.ndarray:
    grad_dim = sum(p.numel() for p in model.parameters())
    proj_dim = min(MAX_PROJ_DIM, grad_dim, len(data["x_train"]) // 2)
    projector = BasicProjector(
        grad_dim=grad_dim,
        proj_dim=proj_dim,
        seed=0,
        proj_type=ProjectionType.rademacher,
        device="cpu",
        dtype=torch.float32,
    )
    with tempfile.TemporaryDirectory() as tmp:
        traker = TRAKer(
            model=model,
            task="image_classification",
            train_set_size=len(data["x_train"]),
            save_dir=tmp,
            device="cpu",
            projector=projector,
            proj_dim=proj_dim,
            use_half_precision=False,
        )
        traker.load_checkpoint(model.state_dict(), model_id=0)
        x, y = data["x_train"], data["y_train"]
        for s in range(0, len(x), 100):
            traker.featurize(batch=[x[s : s + 100], y[s : s + 100]], num_samples=len(x[s : s + 100]))
        traker.finalize_features()
        xt, yt = data["x_lds"], data["y_lds"]
        traker.start_scoring_checkpoint(exp_name="lds", checkpoint=model.state_dict(), model_id=0, num_targets=len(xt))
        for s in range(0, len(xt), 100):
            traker.score(batch=[xt[s : s + 100], yt[s : s + 100]], num_samples=len(xt[s : s + 100]))
        scores = traker.finalize_scores(exp_name="lds")
    return np.asarray(scores).T


if __name__ == "__main__":
    run(compute)
