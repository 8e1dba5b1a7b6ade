"""Shared plumbing for reference runners: each runs in its own venv, loads the shared data, writes scores."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import digits


def make_model(kind: str, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """A digits model, or for any other kind a linear head shaped like its saved weights (the reviews benchmark)."""
    if kind in digits.MODEL_KINDS:
        return digits.make_model(kind)
    out_features, in_features = state["weight"].shape
    return torch.nn.Linear(in_features, out_features)


def run(compute: Callable[[torch.nn.Module, dict[str, torch.Tensor], str], np.ndarray]) -> None:
    """argv: data_path kind out_prefix. compute returns [n_test, n_train], larger = lowered the test loss more."""
    torch.set_num_threads(1)
    data_path, kind, out_prefix = sys.argv[1], sys.argv[2], sys.argv[3]
    data = torch.load(data_path, weights_only=True)
    model = make_model(kind, data[f"state_{kind}"])
    model.load_state_dict(data[f"state_{kind}"])
    model.eval()
    started = time.perf_counter()
    scores = np.asarray(compute(model, data, kind), dtype=np.float64)
    seconds = time.perf_counter() - started
    expected = (len(data["x_lds"]), len(data["x_train"]))
    if scores.shape != expected:
        raise SystemExit(f"scores have shape {scores.shape}, expected {expected}")
    np.save(out_prefix + ".npy", scores)
    Path(out_prefix + ".json").write_text(json.dumps({"seconds": seconds}))
