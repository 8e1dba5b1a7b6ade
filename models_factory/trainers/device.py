"""Run-time choice of device, precision and CPU threads."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from models_factory.trainers.errors import ConfigError


@dataclass(frozen=True)
class DeviceChoice:
    device: torch.device
    # Precision of the forward pass; weights and optimizer state stay fp32 on every device.
    autocast_dtype: torch.dtype | None

    @property
    def name(self) -> str:
        if self.device.type == "cuda":
            return f"cuda:{torch.cuda.get_device_name(self.device)}"
        return "cpu"

    @property
    def precision(self) -> str:
        return "bf16" if self.autocast_dtype == torch.bfloat16 else "fp32"


def choose_device(prefer: str | None = None) -> DeviceChoice:
    """CUDA with bf16 autocast where the card supports it, else CPU fp32.

    `prefer` (or env `TRAIN_DEVICE`) may be "cpu", "cuda" or "auto" (the default).
    """
    wanted = (prefer or os.environ.get("TRAIN_DEVICE") or "auto").lower()
    if wanted not in {"auto", "cpu", "cuda"}:
        raise ConfigError(f"device must be auto, cpu or cuda, not {wanted!r}")
    if wanted == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda was asked for but no CUDA GPU is visible to this worker")
    if wanted != "cpu" and torch.cuda.is_available():
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device("cuda", local_rank)
        bf16 = torch.cuda.is_bf16_supported()
        return DeviceChoice(device=device, autocast_dtype=torch.bfloat16 if bf16 else None)
    return DeviceChoice(device=torch.device("cpu"), autocast_dtype=None)


def configure_threads(device: DeviceChoice | None = None) -> int:
    """Set torch's intra-op threads from env `TORCH_NUM_THREADS` (default 1 on CPU).

    On a loaded 2-core machine one thread was measured far faster than two, so the default is deliberately low;
    a dedicated worker box should set TORCH_NUM_THREADS to its core count.
    """
    raw = os.environ.get("TORCH_NUM_THREADS", "").strip()
    on_cpu = device is None or device.device.type == "cpu"
    if raw:
        try:
            threads = int(raw)
        except ValueError as exc:
            raise ConfigError(f"TORCH_NUM_THREADS must be a whole number, not {raw!r}") from exc
        if threads < 1:
            raise ConfigError(f"TORCH_NUM_THREADS must be at least 1, not {threads}")
    elif on_cpu:
        threads = 1
    else:
        threads = torch.get_num_threads()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
