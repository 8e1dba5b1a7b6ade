"""The packaged sentence encoder (loads offline): unit-length mean-pooled embeddings, for similarity."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from models_factory.trainers.base_models import resolve_encoder
from models_factory.trainers.classifier import load_encoder, mean_pool
from models_factory.trainers.device import choose_device


class SentenceEncoder:
    def __init__(self, encoder: torch.nn.Module, tokenizer: Any) -> None:
        self.encoder = encoder.eval()
        self.tokenizer = tokenizer

    @classmethod
    def load(cls, spec: str, *, device: str | None = None) -> SentenceEncoder:
        """The encoder on the device `choose_device` picks (a GPU when there is one), like the predictors."""
        encoder, tokenizer = load_encoder(resolve_encoder(spec))
        return cls(encoder.to(choose_device(device).device), tokenizer)

    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    def embed(self, texts: list[str], *, batch_size: int = 32, max_length: int = 256) -> np.ndarray:
        """Unit-length mean-pooled embeddings (float32, in input order). Inputs go to the encoder's device; the
        result comes back to the CPU."""
        device = self.device
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = self.tokenizer(
                    texts[start : start + batch_size],
                    padding=True,
                    truncation=True,
                    max_length=max_length,
                    return_tensors="pt",
                )
                batch = {key: value.to(device) for key, value in batch.items()}
                pooled = mean_pool(self.encoder(**batch).last_hidden_state, batch["attention_mask"])
                out.append(torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)
