"""The demo's drug reviews as the classifier sees them: MiniLM mean-pooled embeddings (shared by lds_reviews.py and
demo_flips.py). Needs Django set up, as the review texts and the packaged encoder come through the project."""

from __future__ import annotations

import os
from pathlib import Path

import torch


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DATANETS_DEV", "1")  # a benchmark on this machine, not a server
    import django

    django.setup()


def encode(texts: list[str], max_length: int, *, batch_size: int = 32) -> torch.Tensor:
    """[len(texts), 384] float32 embeddings, normalized when the packaged encoder was trained on unit vectors."""
    from models_factory.trainers.base_models import resolve_encoder
    from models_factory.trainers.classifier import encoder_normalizes, load_encoder, mean_pool, pad_batch

    ref = resolve_encoder()
    encoder, tokenizer = load_encoder(ref)
    encoder.eval()
    normalize = encoder_normalizes(Path(ref.path))
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    out = []
    with torch.inference_mode():
        for start in range(0, len(ids), batch_size):
            batch, mask = pad_batch(ids[start : start + batch_size], tokenizer.pad_token_id or 0)
            pooled = mean_pool(encoder(input_ids=batch, attention_mask=mask).last_hidden_state, mask)
            out.append(torch.nn.functional.normalize(pooled, dim=-1) if normalize else pooled)
    return torch.cat(out).float()
