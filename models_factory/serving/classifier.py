"""Loads a classifier artifact folder and predicts labels with probabilities, in batches; for attribution it also
gives the encoder's embeddings of texts (on the model's device), the trainable head and its per-example loss."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from models_factory.trainers.base_models import BaseModelRef, resolve_encoder
from models_factory.trainers.baselines import TfidfClassifier
from models_factory.trainers.classifier import ARTIFACT_FORMAT, TextClassifier, load_encoder, pad_batch
from models_factory.trainers.device import DeviceChoice, choose_device
from models_factory.trainers.errors import BaseModelError, InputError

Prediction = tuple[str, dict[str, float]]

# Low confidence: the top probability is within LOW_CONFIDENCE_MARGIN of chance (1/K for K labels), or the two most
# likely labels are within LOW_CONFIDENCE_GAP of each other. Either way the answer is close to a coin toss.
LOW_CONFIDENCE_MARGIN = 0.15
LOW_CONFIDENCE_GAP = 0.10


def low_confidence(probabilities: list[float]) -> bool:
    ranked = sorted(probabilities, reverse=True)
    if not ranked:
        return True
    chance = 1.0 / len(ranked)
    gap = ranked[0] - ranked[1] if len(ranked) > 1 else 1.0
    return ranked[0] < chance + LOW_CONFIDENCE_MARGIN or gap < LOW_CONFIDENCE_GAP


class ClassifierPredictor:
    def __init__(
        self,
        model: TextClassifier,
        tokenizer: Any,
        labels: list[str],
        choice: DeviceChoice,
        max_input_tokens: int,
        max_length: int,
        tfidf: TfidfClassifier | None = None,
        encoder_weight: float = 1.0,
    ) -> None:
        self.model = model.to(choice.device).eval()
        self.tokenizer = tokenizer
        self.labels = labels
        self.choice = choice
        self.max_input_tokens = max_input_tokens
        self.max_length = max_length
        self.tfidf = tfidf
        self.encoder_weight = encoder_weight if tfidf is not None else 1.0

    @classmethod
    def load(cls, artifact_dir: Path | str, *, device: str | None = None) -> ClassifierPredictor:
        folder = Path(artifact_dir)
        config_path = folder / "config.json"
        if not config_path.is_file():
            raise BaseModelError(f"{folder} is not a classifier artifact: it has no config.json")
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if config.get("format") != ARTIFACT_FORMAT:
            raise BaseModelError(f"{folder} is not a classifier artifact (format {config.get('format')!r})")
        info = config["encoder"]
        if info["included"]:
            path = folder / "encoder"
            ref = BaseModelRef(info["spec"], info["model_id"], path, info["sha256"])
        else:
            ref = resolve_encoder(info["spec"])
            if ref.sha256 != info["sha256"]:
                raise BaseModelError(
                    f"the encoder {info['spec']!r} on this machine (sha256 {ref.sha256[:12]}) is not the one the "
                    f"classifier was trained on (sha256 {info['sha256'][:12]}); install the same encoder"
                )
        encoder, tokenizer = load_encoder(ref)
        model = TextClassifier(encoder, len(config["labels"]), normalize=config["normalize"])
        model.head.load_state_dict(load_file(str(folder / "head.safetensors")))
        limit = int(getattr(encoder.config, "max_position_embeddings", config["max_length"]))
        ensemble = config.get("ensemble") or {}
        tfidf = TfidfClassifier.load(folder) if ensemble.get("tfidf") else None
        return cls(
            model,
            tokenizer,
            config["labels"],
            choose_device(device),
            limit,
            int(config["max_length"]),
            tfidf=tfidf,
            encoder_weight=float(ensemble.get("encoder_weight", 1.0)),
        )

    def predict(self, texts: list[str], *, batch_size: int = 32) -> list[Prediction]:
        """[(label, {label: probability})] in input order. Raises InputError for an empty text."""
        return [(p["label"], p["probabilities"]) for p in self.predict_detailed(texts, batch_size=batch_size)]

    def predict_detailed(self, texts: list[str], *, batch_size: int = 32) -> list[dict[str, Any]]:
        """Per text: label, probabilities, low_confidence, and how it was truncated. A text longer than the trained
        max length is cut exactly as training cut its texts (`truncated`, `tokens_kept` of `tokens_in`)."""
        if not texts:
            raise InputError("no input texts were given")
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise InputError(f"input {i} is empty; send some text to classify")
        full = self.tokenizer(texts, truncation=False, verbose=False)["input_ids"]
        rows = self._truncate(full)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        probs = torch.empty((len(rows), len(self.labels)))
        pad_id = self.tokenizer.pad_token_id or 0
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                ids, mask = pad_batch([rows[i] for i in chunk], pad_id)
                logits = self.model(ids.to(self.choice.device), mask.to(self.choice.device))
                probs[chunk] = torch.softmax(logits.float(), dim=-1).cpu()
        if self.tfidf is not None:
            # The ensemble the card measured: the tf-idf half reads the whole text, as it did in training.
            probs = self.encoder_weight * probs + (1 - self.encoder_weight) * self.tfidf.predict_proba(texts)
        out: list[dict[str, Any]] = []
        for row, ids, kept in zip(probs.tolist(), full, rows, strict=True):
            scores = {label: float(p) for label, p in zip(self.labels, row, strict=True)}
            out.append(
                {
                    "label": self.labels[max(range(len(row)), key=row.__getitem__)],
                    "probabilities": scores,
                    "low_confidence": low_confidence(row),
                    "truncated": len(kept) < len(ids),
                    "tokens_in": len(ids),
                    "tokens_kept": len(kept),
                }
            )
        return out

    def _truncate(self, rows: list[list[int]]) -> list[list[int]]:
        # Truncate like training did: the head only ever saw the first max_length tokens (and the closing one).
        return [row if len(row) <= self.max_length else row[: self.max_length - 1] + row[-1:] for row in rows]

    def embed(self, texts: list[str], *, batch_size: int = 32) -> np.ndarray:
        """The encoder's pooled embeddings of `texts` (float32, in input order), truncated exactly as the classifier
        saw its inputs. Inputs go to the model's device; the result comes back to the CPU."""
        rows = self._truncate(self.tokenizer(texts, truncation=False)["input_ids"])
        pad_id = self.tokenizer.pad_token_id or 0
        device = self.choice.device
        out = []
        with torch.inference_mode():
            for start in range(0, len(rows), batch_size):
                ids, mask = pad_batch(rows[start : start + batch_size], pad_id)
                out.append(self.model.embed(ids.to(device), mask.to(device)).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)

    def gradient_head(self) -> torch.nn.Module:
        """The classification head with trainable parameters, on the CPU where the attribution engine computes its
        gradients (a copy when the model lives on an accelerator, so serving keeps its own)."""
        head = self.model.head
        if any(p.device.type != "cpu" for p in head.parameters()):
            head = copy.deepcopy(head).cpu()
        for p in head.parameters():
            p.requires_grad_(True)
        return head

    @staticmethod
    def per_example_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The training loss of each example (cross-entropy, not reduced): what the gradient index differentiates."""
        return torch.nn.functional.cross_entropy(outputs, targets, reduction="none")
