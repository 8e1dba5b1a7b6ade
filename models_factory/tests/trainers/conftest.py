"""Fixtures for the Django-free training and serving core: tiny data, a tiny base model, one thread."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from models_factory.trainers.base_models import build_tiny_base
from models_factory.trainers.common import NullCallbacks

os.environ.setdefault("TORCH_NUM_THREADS", "1")
os.environ["TRAIN_DEVICE"] = "cpu"
torch.set_num_threads(1)

COLORS = ["red", "blue", "green", "yellow", "black", "white", "orange", "purple", "brown", "pink"]
THINGS = ["apple", "sky", "grass", "banana", "coal", "snow", "carrot", "plum", "bark", "flamingo"]


@pytest.fixture
def settings() -> SimpleNamespace:
    """These tests need no Django; the root conftest's autouse media fixture only needs an object to set."""
    return SimpleNamespace()


def color_records() -> list[dict[str, Any]]:
    return [{"instruction": f"What color is the {t}?", "response": f"The {t} is {c}."} for t, c in zip(THINGS, COLORS)]


def sum_records() -> list[dict[str, Any]]:
    return [
        {"question": f"Add {a} and {b}.", "answer": f"{a} plus {b} is {a + b}."} for a in range(4) for b in range(3)
    ]


def review_data() -> tuple[list[str], list[str]]:
    good = ["great", "wonderful", "excellent", "fantastic", "helpful", "amazing", "superb", "lovely", "perfect", "fine"]
    bad = ["awful", "terrible", "horrible", "useless", "painful", "dreadful", "nasty", "poor", "broken", "sickening"]
    texts: list[str] = []
    labels: list[str] = []
    for g, b in zip(good, bad):
        texts += [f"This medicine was {g}.", f"The treatment felt {g} to me.", f"This medicine was {b}."]
        texts += [f"The side effects were {b}."]
        labels += ["positive", "positive", "negative", "negative"]
    return texts, labels


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = [v for r in color_records() + sum_records() for v in r.values()]
    return build_tiny_base(texts, tmp_path_factory.mktemp("tiny-base"), seed=0)


class Recorder(NullCallbacks):
    def __init__(self, *, cancel_after: int | None = None, crash_at: int | None = None) -> None:
        self.progress: list[tuple[int, int, int, float, float, float]] = []
        self.checkpoints: list[Path] = []
        self.cancel_after = cancel_after
        self.crash_at = crash_at

    def on_progress(
        self, step: int, total_steps: int, epoch: int, loss: float, examples_per_s: float, eta_s: float
    ) -> None:
        self.progress.append((step, total_steps, epoch, loss, examples_per_s, eta_s))
        if self.crash_at is not None and step == self.crash_at:
            raise WorkerKilled(f"simulated kill at step {step}")

    def should_cancel(self) -> bool:
        return self.cancel_after is not None and len(self.progress) >= self.cancel_after

    def on_checkpoint(self, path: Path) -> None:
        self.checkpoints.append(path)


class WorkerKilled(Exception):
    pass
