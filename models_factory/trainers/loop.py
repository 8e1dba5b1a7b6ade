"""The training loop every trainer shares: steps, progress, cancel, checkpoints, resume, OOM, accelerate.

Scaling out: the loop uses `accelerate.Accelerator` when the package is installed (env TRAIN_USE_ACCELERATE=0
turns it off), so the same trainer code runs on one CPU, one GPU, or several GPUs/machines when a script that calls
`LoRATrainer(...).train(...)` or `ClassifierTrainer(...).train(...)` is started through a launcher, e.g.

    accelerate launch --num_processes 4 train_run.py      # or
    torchrun --nproc_per_node 4 train_run.py              # add --nnodes/--rdzv-endpoint for several machines

A Celery worker runs one process; to use several GPUs for one run, the task starts such a launcher as a subprocess.

Every process builds the same model and data; each takes every `num_processes`-th batch of the seeded epoch order
(data parallel, gradients averaged by DDP), so the effective batch is `batch_size * num_processes`. Only the main
process writes checkpoints and the final artifact, into a folder all processes can read (shared disk). Without
accelerate the loop runs in one process with the device chosen by `device.choose_device`.
"""

from __future__ import annotations

import math
import os
import pickle
import random
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models_factory.trainers.common import Callbacks, TrainConfig
from models_factory.trainers.device import DeviceChoice
from models_factory.trainers.errors import Cancelled, TrainingFailed

CHECKPOINT_PREFIX = "step-"
CHECKPOINT_FORMAT = 1


@dataclass
class LoopSpec:
    """What a trainer hands the loop. `batches_for_epoch` must return the same list for the same epoch every time."""

    model: nn.Module
    batches_for_epoch: Callable[[int], list[Any]]
    loss_fn: Callable[[nn.Module, Any], torch.Tensor]
    batch_examples: Callable[[Any], int]
    fingerprint: str
    evaluate: Callable[[nn.Module], dict[str, Any]] | None = None
    # Optimizer groups as (parameters, lr multiplier); None: every trainable parameter at the configured lr.
    param_groups: list[tuple[list[nn.Parameter], float]] | None = None
    # Evaluate after every epoch (and at the end), keep the weights of the lowest val_loss, stop after this many
    # evaluations without improvement. None: no early stopping.
    early_stopping_patience: int | None = None


@dataclass
class LoopOutcome:
    model: nn.Module
    steps: int
    loss_history: list[tuple[int, float]]
    eval_history: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    resumed_from_step: int | None = None
    best_step: int | None = None
    steps_per_epoch: int = 0
    examples_per_s: float = 0.0
    is_main_process: bool = True


class _PlainRunner:
    """The subset of `accelerate.Accelerator` the loop uses, for installs without accelerate."""

    process_index = 0
    num_processes = 1
    is_main_process = True

    def __init__(self, choice: DeviceChoice) -> None:
        self.choice = choice
        self.device = choice.device

    def prepare(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[nn.Module, torch.optim.Optimizer]:
        return model, optimizer

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def autocast(self) -> AbstractContextManager[Any]:
        if self.choice.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.choice.autocast_dtype)

    def unwrap_model(self, model: nn.Module) -> nn.Module:
        return model

    def wait_for_everyone(self) -> None:
        pass


def make_runner(choice: DeviceChoice) -> Any:
    if os.environ.get("TRAIN_USE_ACCELERATE", "1") == "0":
        return _PlainRunner(choice)
    try:
        from accelerate import Accelerator
    except ImportError:
        return _PlainRunner(choice)
    precision = "bf16" if choice.autocast_dtype == torch.bfloat16 else "no"
    return Accelerator(cpu=choice.device.type == "cpu", mixed_precision=precision)


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().cpu().clone() for name, p in model.named_parameters() if p.requires_grad}


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [
            np_state[0],
            torch.from_numpy(np_state[1].copy()),
            int(np_state[2]),
            int(np_state[3]),
            float(np_state[4]),
        ],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _checkpoint_files(checkpoint_dir: Path) -> list[Path]:
    return sorted(checkpoint_dir.glob(f"{CHECKPOINT_PREFIX}*.pt"))


def save_checkpoint(checkpoint_dir: Path, state: dict[str, Any]) -> Path:
    """Write tmp, fsync, rename: a kill at any moment leaves the previous checkpoint or the new one, never half."""
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    final = checkpoint_dir / f"{CHECKPOINT_PREFIX}{state['step']:09d}.pt"
    tmp = checkpoint_dir / f".{final.name}.tmp"
    with tmp.open("wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, final)
    for older in _checkpoint_files(checkpoint_dir):
        if older != final:
            older.unlink(missing_ok=True)
    return final


def load_latest_checkpoint(checkpoint_dir: Path | None, fingerprint: str) -> dict[str, Any] | None:
    """The newest checkpoint of this exact run (same config, data and base), or None."""
    if checkpoint_dir is None or not checkpoint_dir.is_dir():
        return None
    for path in reversed(_checkpoint_files(checkpoint_dir)):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError):  # unreadable: start from an earlier one
            state = {}
        if state.get("format") == CHECKPOINT_FORMAT and state.get("fingerprint") == fingerprint:
            return state
    return None


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    message = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in message or "can't allocate memory" in message)


class _Throughput:
    def __init__(self, window: int = 20) -> None:
        self.window = window
        self.samples: list[tuple[float, int]] = []

    def add(self, examples: int) -> float:
        self.samples.append((time.perf_counter(), examples))
        self.samples = self.samples[-self.window - 1 :]
        if len(self.samples) < 2:
            return 0.0
        elapsed = self.samples[-1][0] - self.samples[0][0]
        done = sum(n for _, n in self.samples[1:])
        return done / elapsed if elapsed > 0 else 0.0


def run_loop(
    spec: LoopSpec,
    *,
    config: TrainConfig,
    choice: DeviceChoice,
    callbacks: Callbacks,
    checkpoint_dir: Path | None,
) -> LoopOutcome:
    try:
        return _run_loop(spec, config=config, choice=choice, callbacks=callbacks, checkpoint_dir=checkpoint_dir)
    except Cancelled:
        # A cancelled run is over for good: a redelivered task must not quietly resume it.
        clear_checkpoints(checkpoint_dir)
        raise
    except BaseException as exc:
        if _is_oom(exc):
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            raise TrainingFailed(
                f"ran out of memory at batch size {config.batch_size}; lower batch_size or max_length"
            ) from exc
        raise


def _run_loop(
    spec: LoopSpec,
    *,
    config: TrainConfig,
    choice: DeviceChoice,
    callbacks: Callbacks,
    checkpoint_dir: Path | None,
) -> LoopOutcome:
    runner = make_runner(choice)
    world, rank = runner.num_processes, runner.process_index
    model = spec.model.to(runner.device)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise TrainingFailed("the model has no trainable parameters")
    groups = spec.param_groups or [(params, 1.0)]
    optimizer = torch.optim.AdamW(
        [{"params": g, "lr": config.learning_rate * m, "lr_scale": m} for g, m in groups],
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
    )

    batches_cache: dict[int, list[Any]] = {}

    def epoch_batches(epoch: int) -> list[Any]:
        if epoch not in batches_cache:
            batches_cache.clear()
            batches_cache[epoch] = spec.batches_for_epoch(epoch)
        return batches_cache[epoch]

    n_batches = len(epoch_batches(0))
    steps_per_epoch = max(1, math.ceil(n_batches / world))
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)

    start_step = 0
    loss_history: list[tuple[int, float]] = []
    eval_history: list[tuple[int, dict[str, Any]]] = []
    resumed_from: int | None = None
    state = load_latest_checkpoint(checkpoint_dir, spec.fingerprint)
    if state is not None:
        missing = {n for n, p in model.named_parameters() if p.requires_grad} - set(state["trainable"])
        if missing:
            raise TrainingFailed(f"checkpoint does not match the model: missing {sorted(missing)[:3]}")
        model.load_state_dict(state["trainable"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        start_step = resumed_from = int(state["step"])
        loss_history = [(int(s), float(v)) for s, v in state["loss_history"]]
        eval_history = [(int(s), m) for s, m in state.get("eval_history", [])]
        _restore_rng(state["rng"])

    warmup = math.ceil(config.warmup_ratio * total_steps)
    patience = spec.early_stopping_patience
    eval_every = steps_per_epoch if patience is not None and not config.eval_every else config.eval_every
    best_loss, best_step, best_state, bad_evals = math.inf, None, None, 0
    model, optimizer = runner.prepare(model, optimizer)
    meter = _Throughput()
    meter.add(0)
    loop_started = started = time.perf_counter()
    examples_done = 0
    step = start_step
    on_phase = getattr(callbacks, "on_phase", None)
    if on_phase is not None:
        on_phase("training", step, total_steps, "steps", 0.0, None)
    while step < total_steps:
        if callbacks.should_cancel():
            raise Cancelled(f"cancelled at step {step} of {total_steps}")
        epoch, index = divmod(step, steps_per_epoch)
        batches = epoch_batches(epoch)
        batch = batches[(index * world + rank) % n_batches]
        # Linear warm-up then linear decay, computed from the step, so a resumed run needs no scheduler state.
        if step < warmup:
            factor = (step + 1) / warmup
        else:
            factor = (total_steps - step) / max(1, total_steps - warmup)
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate * group.get("lr_scale", 1.0) * factor
        model.train()
        with runner.autocast():
            loss = spec.loss_fn(model, batch)
        runner.backward(loss)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        value = float(loss.detach().float().item())
        if not math.isfinite(value):
            raise TrainingFailed(f"the loss became {value} at step {step}; lower lr (now {config.learning_rate})")
        loss_history.append((step, value))
        n_examples = spec.batch_examples(batch) * world
        if step == start_step + 1:
            # Throughput leaves out the first step (allocator and kernel warm-up), as benchmarks usually do.
            started = time.perf_counter()
        else:
            examples_done += n_examples
        rate = meter.add(n_examples)
        per_step = (time.perf_counter() - loop_started) / (step - start_step)
        eta = per_step * (total_steps - step)

        final_eval = patience is not None and step == total_steps
        if (
            spec.evaluate is not None
            and eval_every
            and (step % eval_every == 0 or final_eval)
            and (step < total_steps or final_eval)
        ):
            with torch.no_grad(), runner.autocast():
                metrics = spec.evaluate(runner.unwrap_model(model))
            eval_history.append((step, metrics))
            on_eval = getattr(callbacks, "on_eval", None)
            if on_eval is not None:
                on_eval(step, metrics)
            if patience is not None and metrics.get("val_loss") is not None:
                if metrics["val_loss"] < best_loss - 1e-4:
                    best_loss, best_step, bad_evals = metrics["val_loss"], step, 0
                    best_state = trainable_state(runner.unwrap_model(model))
                else:
                    bad_evals += 1
                if bad_evals >= patience:
                    callbacks.on_progress(step, step, step / steps_per_epoch, value, rate, 0.0)
                    break
        if checkpoint_dir is not None and step % config.checkpoint_every == 0 and step < total_steps:
            if runner.is_main_process:
                path = save_checkpoint(
                    checkpoint_dir,
                    {
                        "format": CHECKPOINT_FORMAT,
                        "fingerprint": spec.fingerprint,
                        "step": step,
                        "trainable": trainable_state(runner.unwrap_model(model)),
                        "optimizer": optimizer.state_dict(),
                        "loss_history": [[s, v] for s, v in loss_history],
                        "eval_history": [[s, m] for s, m in eval_history],
                        "rng": _rng_state(),
                    },
                )
                callbacks.on_checkpoint(path)
            runner.wait_for_everyone()
        callbacks.on_progress(step, total_steps, step / steps_per_epoch, value, rate, eta)

    elapsed = time.perf_counter() - started
    runner.wait_for_everyone()
    final = runner.unwrap_model(model)
    if best_state is not None and best_step != step:
        final.load_state_dict(best_state, strict=False)
    return LoopOutcome(
        model=final,
        best_step=best_step,
        steps_per_epoch=steps_per_epoch,
        steps=step,
        loss_history=loss_history,
        eval_history=eval_history,
        resumed_from_step=resumed_from,
        examples_per_s=examples_done / elapsed if elapsed > 0 else 0.0,
        is_main_process=runner.is_main_process,
    )


def clear_checkpoints(checkpoint_dir: Path | None) -> None:
    if checkpoint_dir is None or not checkpoint_dir.is_dir():
        return
    for path in checkpoint_dir.glob(f"*{CHECKPOINT_PREFIX}*"):
        path.unlink(missing_ok=True)


def iter_chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
