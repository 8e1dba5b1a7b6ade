"""Configuration, seeds, callbacks, results and file helpers shared by every trainer."""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import random
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from core.canonical import content_hash
from models_factory.trainers.errors import Cancelled, ConfigError

CLASSIFIER_METHODS = ("finetune", "head", "full")
GENERATIVE_METHODS = ("lora",)
# The classifier recipe a run gets unless its builder changes it; benchmarks/training/classifier_bench.py measures it.
CLASSIFIER_RECIPE: dict[str, Any] = {
    "method": "finetune",
    "epochs": 5,
    "batch_size": 16,
    "lr": 5e-5,
    "max_length": 256,
    "warmup_ratio": 0.1,
    "weight_decay": 0.01,
    # All 6 of MiniLM's layers: on the demo, top 2 (lr 1e-4) and top 3 (lr 2e-4) lost to tf-idf; all 6 beat it.
    "train_layers": 6,
    "ensemble": True,
}
DEFAULT_LR = {"head": 1e-2, "full": 5e-5, "finetune": 1e-4, "lora": 1e-3}


@dataclass
class TrainConfig:
    """Hyperparameters of one run; `to_dict()` is what a model version stores."""

    method: str = "head"
    epochs: int = 3
    batch_size: int = 16
    lr: float | None = None  # None: the method's default (DEFAULT_LR)
    max_length: int = 128  # 0 (LoRA only): chosen from the data's token lengths
    seed: int = 0
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    eval_every: int = 0  # steps between validation passes; 0: only at the end
    max_steps: int | None = None
    checkpoint_every: int = 50
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0  # share of the steps over which the lr rises linearly from 0 before it decays
    train_layers: int = 6  # finetune: how many of the encoder's top layers train (the rest run once, frozen)
    ensemble: bool = True  # finetune: average with a tf-idf model when that lowers the held-out loss

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR.get(self.method, 1e-3)

    def validate(self, *, methods: tuple[str, ...] | None = None) -> TrainConfig:
        problems: list[str] = []
        allowed = methods or CLASSIFIER_METHODS + GENERATIVE_METHODS
        if self.method not in allowed:
            problems.append(f"method must be one of {', '.join(allowed)}, not {self.method!r}")

        def check_int(name: str, low: int, high: int) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                problems.append(f"{name} must be a whole number, not {value!r}")
            elif not low <= value <= high:
                problems.append(f"{name} must be between {low} and {high}, not {value}")

        def check_float(name: str, low: float, high: float, *, low_open: bool) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
                problems.append(f"{name} must be a number, not {value!r}")
                return
            too_low = value <= low if low_open else value < low
            if too_low or value > high:
                bracket = "(" if low_open else "["
                problems.append(f"{name} must be in {bracket}{low}, {high}], not {value}")

        check_int("epochs", 1, 100)
        check_int("batch_size", 1, 4096)
        if self.max_length != 0 or self.method not in GENERATIVE_METHODS:
            check_int("max_length", 8, 8192)
        check_int("seed", 0, 2**32 - 1)
        check_int("lora_r", 1, 256)
        check_int("lora_alpha", 1, 1024)
        check_int("eval_every", 0, 1_000_000)
        check_int("checkpoint_every", 1, 1_000_000)
        if self.lr is not None:
            check_float("lr", 0.0, 1.0, low_open=True)
        check_float("lora_dropout", 0.0, 0.9, low_open=False)
        check_float("weight_decay", 0.0, 1.0, low_open=False)
        check_float("warmup_ratio", 0.0, 0.5, low_open=False)
        check_int("train_layers", 1, 48)
        if not isinstance(self.ensemble, bool):
            problems.append(f"ensemble must be true or false, not {self.ensemble!r}")
        if self.max_steps is not None:
            check_int("max_steps", 1, 10_000_000)
        if problems:
            raise ConfigError("invalid hyperparameters: " + "; ".join(problems))
        return self

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["lr"] = self.learning_rate
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown hyperparameters: {', '.join(unknown)}; known ones are {', '.join(sorted(known))}"
            )
        return cls(**data)


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@runtime_checkable
class Callbacks(Protocol):
    """What a trainer reports to whoever runs it (a Celery task updating a Job row, a test, the CLI)."""

    def on_progress(
        self, step: int, total_steps: int, epoch: float, loss: float, examples_per_s: float, eta_s: float
    ) -> None: ...

    def should_cancel(self) -> bool: ...

    def on_checkpoint(self, path: Path) -> None: ...


class NullCallbacks:
    """Does nothing; subclass it and override what you need. `on_eval` and `on_phase` are optional on other
    callback objects.

    `on_progress` reports training steps (`epoch` is fractional: 0.25 a quarter into the first epoch);
    `on_phase` reports the work before the steps (tokenizing, embedding) as items done of a total."""

    def on_progress(
        self, step: int, total_steps: int, epoch: float, loss: float, examples_per_s: float, eta_s: float
    ) -> None:
        pass

    def on_phase(self, phase: str, done: int, total: int, unit: str, rate: float, eta_s: float | None) -> None:
        pass

    def should_cancel(self) -> bool:
        return False

    def on_checkpoint(self, path: Path) -> None:
        pass

    def on_eval(self, step: int, metrics: dict[str, Any]) -> None:
        pass


class PhaseMeter:
    """Counts the items of a phase that is not training steps and reports them (count, rate, time left) through
    the callbacks' optional `on_phase`, at most every `interval` seconds and always at the start and the end.
    A cancel asked for during the phase stops the run here rather than after it."""

    def __init__(self, callbacks: Any, phase: str, total: int, *, unit: str = "records", interval: float = 0.5) -> None:
        self.callbacks = callbacks
        self.phase = phase
        self.total = total
        self.unit = unit
        self.interval = interval
        self.done = 0
        self.started = time.perf_counter()
        self._last = 0.0
        self._report(force=True)

    def advance(self, n: int = 1) -> None:
        self.done = min(self.total, self.done + n)
        self._report(force=self.done >= self.total)
        should_cancel = getattr(self.callbacks, "should_cancel", None)
        if should_cancel is not None and should_cancel():
            raise Cancelled(f"cancelled while {self.phase} ({self.done} of {self.total} {self.unit})")

    def _report(self, *, force: bool) -> None:
        on_phase = getattr(self.callbacks, "on_phase", None)
        now = time.perf_counter()
        if on_phase is None or (not force and now - self._last < self.interval):
            return
        self._last = now
        elapsed = now - self.started
        rate = self.done / elapsed if elapsed > 0 and self.done else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else None
        on_phase(self.phase, self.done, self.total, self.unit, rate, eta)


@dataclass
class TrainResult:
    kind: str
    method: str
    metrics: dict[str, Any]
    artifact_dir: Path
    artifact_size_bytes: int
    loss_history: list[tuple[int, float]]
    library_versions: dict[str, str]
    base_model_id: str
    base_model_sha256: str
    seeds: dict[str, int]
    config: dict[str, Any]
    device: str
    precision: str
    steps: int
    train_examples: int
    resumed_from_step: int | None = None
    duration_s: float = 0.0
    examples_per_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["artifact_dir"] = str(self.artifact_dir)
        data["loss_history"] = [[s, v] for s, v in self.loss_history]
        return data


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("torch", "transformers", "peft", "tokenizers", "safetensors", "accelerate", "numpy", "gguf"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


_file_hash_cache: dict[tuple[str, int, int], str] = {}


def sha256_file(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _file_hash_cache:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        _file_hash_cache[key] = digest.hexdigest()
    return _file_hash_cache[key]


MODEL_FILE_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")


def sha256_model_files(path: Path) -> str:
    """SHA-256 of a weights file, or of the sorted {relative path: sha256} of every weights file in a folder."""
    if path.is_file():
        return sha256_file(path)
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(MODEL_FILE_SUFFIXES))
    return content_hash({str(p.relative_to(path)): sha256_file(p) for p in files})


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


@contextmanager
def atomic_output_dir(output_dir: Path) -> Iterator[Path]:
    """Yield a scratch folder beside `output_dir` and move it into place only if the block finishes.

    A run that fails or is killed leaves at most a hidden `.tmp-` folder, never a half artifact at `output_dir`.
    An existing `output_dir` (a finished earlier delivery of the same task) is replaced.
    """
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = output_dir.parent / f".{output_dir.name}.tmp-{uuid.uuid4().hex[:8]}"
    scratch.mkdir()
    try:
        yield scratch
        if output_dir.exists():
            old = output_dir.parent / f".{output_dir.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(output_dir, old)
            os.replace(scratch, output_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(scratch, output_dir)
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
