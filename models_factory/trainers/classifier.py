"""Text classifier: a sentence encoder (MiniLM by default) + mean pooling + a linear head.

Methods:
- `finetune` (the default recipe; benchmarks/training/classifier_bench.py measures it against the baselines): the encoder's lower layers run
  once (frozen, cached), its top `train_layers` layers and the head train with class-weighted cross-entropy, a
  warm-up then linear decay, and early stopping on the loss of a slice held out of the training split; max length
  is the 95th percentile of the training texts' token lengths (capped by `max_length`). With `ensemble` the served
  probabilities average the encoder's with a tf-idf + logistic regression model trained in the same run, at the
  weight that gives the lower loss on that held-out slice (never on the validation split the card reports).
- `head` trains only the head on embeddings computed once (the fast option); `full` fine-tunes everything.

Every method also fits the three baselines of `baselines.py` on the same training split and reports their
validation metrics beside the model's, with a per-class report.

Artifact folder: config.json, labels.json, head.safetensors, training_info.json, for `finetune`/`full` an `encoder/`
Hugging Face model folder, and with an ensemble the tf-idf model's files. A `head` artifact names its encoder by id
and SHA-256 instead of copying 90 MB.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from core.canonical import content_hash
from models_factory.trainers.base_models import MINILM, BaseModelRef, resolve_encoder
from models_factory.trainers.baselines import BASELINE_TITLES, TfidfClassifier, baseline_probabilities
from models_factory.trainers.common import (
    CLASSIFIER_METHODS,
    Callbacks,
    NullCallbacks,
    PhaseMeter,
    TrainConfig,
    TrainResult,
    atomic_output_dir,
    dir_size,
    library_versions,
    set_seed,
    write_json,
)
from models_factory.trainers.device import DeviceChoice, choose_device, configure_threads
from models_factory.trainers.errors import BaseModelError, DataError
from models_factory.trainers.loop import LoopSpec, clear_checkpoints, iter_chunks, run_loop

MIN_RECORDS = 4
ARTIFACT_FORMAT = "datanets-text-classifier"
EMBED_BATCH = 64
TOKENIZE_BATCH = 256
LOGIT_SCALE = 20.0  # finetune: the head sees unit embeddings times this (a cosine classifier), folded in on save
HEAD_LR_SCALE = 20.0  # finetune: the new head learns this many times faster than the pretrained layers
STOP_FRACTION = 0.1  # finetune: share of the training split held out for early stopping and the ensemble weight
ENSEMBLE_WEIGHTS = (1.0, 0.75, 0.5, 0.25)  # candidate weights of the encoder's probabilities
MIN_FOR_STOP_SPLIT = 40


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class TextClassifier(nn.Module):
    def __init__(self, encoder: nn.Module, n_labels: int, *, normalize: bool) -> None:
        super().__init__()
        self.encoder = encoder
        self.normalize = normalize
        self.head = nn.Linear(encoder.config.hidden_size, n_labels)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        pooled = mean_pool(hidden, attention_mask)
        return nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(input_ids, attention_mask).float())


def encoder_normalizes(path: Path) -> bool:
    """sentence-transformers folders list a Normalize module when the encoder was trained on unit vectors."""
    modules = path / "modules.json"
    return modules.is_file() and "Normalize" in modules.read_text(encoding="utf-8")


def load_encoder(ref: BaseModelRef) -> tuple[nn.Module, Any]:
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(ref.path, local_files_only=True)
        encoder = AutoModel.from_pretrained(ref.path, local_files_only=True, dtype=torch.float32)
    except Exception as exc:  # transformers raises many types for "this is not a model"
        raise BaseModelError(f"could not load encoder {ref.spec!r} from {ref.path}: {exc}") from exc
    if not hasattr(encoder.config, "hidden_size"):
        raise BaseModelError(f"{ref.spec!r} is not a text encoder (its config has no hidden_size)")
    return encoder, tokenizer


def pad_batch(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask


def classification_metrics(y_true: list[int], y_pred: list[int], labels: list[str]) -> dict[str, Any]:
    k = len(labels)
    matrix = [[0] * k for _ in range(k)]
    for t, p in zip(y_true, y_pred, strict=True):
        matrix[t][p] += 1
    f1s = []
    per_label = {}
    for i, label in enumerate(labels):
        tp = matrix[i][i]
        fp = sum(matrix[r][i] for r in range(k)) - tp
        fn = sum(matrix[i]) - tp
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[label] = {"precision": precision, "recall": recall, "f1": f1, "support": sum(matrix[i])}
        f1s.append(f1)
    correct = sum(matrix[i][i] for i in range(k))
    return {
        "accuracy": correct / len(y_true) if y_true else 0.0,
        "macro_f1": sum(f1s) / k if k else 0.0,
        "confusion_matrix": {"labels": labels, "matrix": matrix},
        "per_label": per_label,
        "n_validation": len(y_true),
    }


def _check_texts(texts: list[str], labels: list[str], what: str) -> None:
    if len(texts) != len(labels):
        raise DataError(f"{what}: {len(texts)} texts but {len(labels)} labels; give one label per text")
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{what}: record {i} has an empty text; remove it or fill it in")
    for i, label in enumerate(labels):
        if not isinstance(label, str) or not label.strip():
            raise DataError(f"{what}: record {i} has no label")


class ClassifierTrainer:
    """Trains a text classifier. One instance may train many runs; the encoder is loaded per run."""

    def __init__(self, encoder: str = MINILM, *, device: str | None = None) -> None:
        self.encoder_spec = encoder
        self.device_pref = device

    def train(
        self,
        *,
        texts: list[str],
        labels: list[str],
        config: TrainConfig,
        output_dir: Path,
        label_set: list[str] | None = None,
        val_texts: list[str] | None = None,
        val_labels: list[str] | None = None,
        checkpoint_dir: Path | None = None,
        callbacks: Callbacks | None = None,
    ) -> TrainResult:
        started = time.perf_counter()
        config.validate(methods=CLASSIFIER_METHODS)
        callbacks = callbacks or NullCallbacks()
        choice = choose_device(self.device_pref)
        configure_threads(choice)
        _check_texts(texts, labels, "training data")
        if len(texts) < MIN_RECORDS:
            raise DataError(f"training needs at least {MIN_RECORDS} records; the snapshot has {len(texts)}")
        present = sorted(set(labels))
        if len(present) < 2:
            raise DataError(
                f"the training data has a single label ({present[0]!r}); a classifier needs at least two labels"
            )
        label_list = list(label_set) if label_set else present
        unknown = sorted(set(labels) - set(label_list))
        if unknown:
            raise DataError(f"labels {unknown} are not in the label set {label_list}")

        validation_note = "validation split"
        if val_texts is None or val_labels is None or not val_texts:
            texts, labels, val_texts, val_labels, validation_note = _hold_out(texts, labels, config.seed)
        _check_texts(val_texts, val_labels, "validation data")
        unknown = sorted(set(val_labels) - set(label_list))
        if unknown:
            raise DataError(f"validation labels {unknown} are not in the label set {label_list}")

        ref = resolve_encoder(self.encoder_spec)
        set_seed(config.seed)
        encoder, tokenizer = load_encoder(ref)
        model = TextClassifier(encoder, len(label_list), normalize=encoder_normalizes(ref.path))
        index = {label: i for i, label in enumerate(label_list)}
        y_train = [index[label] for label in labels]
        y_val = [index[label] for label in val_labels]
        cap = min(config.max_length, getattr(encoder.config, "max_position_embeddings", config.max_length))
        meter = PhaseMeter(callbacks, "tokenizing", len(texts) + len(val_texts), unit="texts")
        tok_train = tokenize_all(tokenizer, texts, cap, meter)
        tok_val = tokenize_all(tokenizer, val_texts, cap, meter)
        max_len = cap
        if config.method == "finetune":
            max_len = length_from_data(tok_train, cap)
            tok_train, tok_val = truncate_rows(tok_train, max_len), truncate_rows(tok_val, max_len)
        pad_id = tokenizer.pad_token_id or 0

        fingerprint = content_hash(
            {
                "kind": "classifier",
                "config": config.to_dict(),
                "base": ref.sha256,
                "labels": label_list,
                "data": content_hash([texts, labels, val_texts, val_labels]),
            }
        )
        extra_info: dict[str, Any] = {}
        tfidf_model: TfidfClassifier | None = None
        ensemble_weight = 1.0
        if config.method == "finetune":
            n_stop = int(len(texts) * STOP_FRACTION) if len(texts) >= MIN_FOR_STOP_SPLIT else 0
            order = _epoch_order(len(texts), config.seed, -2).tolist()
            stop_idx, fit_idx = sorted(order[:n_stop]), sorted(order[n_stop:])
            model.encoder.to(choice.device).eval()
            meter = PhaseMeter(callbacks, "embedding", len(tok_train) + len(tok_val), unit="texts")
            keep = len(model.encoder.encoder.layer) - min(config.train_layers, len(model.encoder.encoder.layer))
            hidden_train, train_x = cache_hidden(model, tok_train, pad_id, choice, keep, meter)
            hidden_val, val_x = cache_hidden(model, tok_val, pad_id, choice, keep, meter)
            spec = self._finetune_spec(
                model, keep, hidden_train, y_train, fit_idx, stop_idx, pad_id, config, fingerprint, label_list
            )
        else:
            # Frozen embeddings: the head method's inputs, and the baseline's for both methods.
            model.encoder.to(choice.device).eval()
            meter = PhaseMeter(callbacks, "embedding", len(tok_train) + len(tok_val), unit="texts")
            train_x = embed_all(model, tok_train, pad_id, choice, meter)
            val_x = embed_all(model, tok_val, pad_id, choice, meter)
            model.encoder.cpu()
            spec = (
                self._head_spec(train_x, y_train, val_x, y_val, model, config, fingerprint, label_list)
                if config.method == "head"
                else self._full_spec(model, tok_train, y_train, tok_val, y_val, pad_id, config, fingerprint, label_list)
            )
        outcome = run_loop(spec, config=config, choice=choice, callbacks=callbacks, checkpoint_dir=checkpoint_dir)
        trained = outcome.model
        if config.method == "head":
            model.head = trained
        baselines = baseline_probabilities(
            train_texts=texts,
            y_train=y_train,
            val_texts=val_texts,
            train_embeddings=train_x,
            val_embeddings=val_x,
            n_classes=len(label_list),
        )
        with torch.no_grad():
            if config.method == "finetune":
                top = trained.to(choice.device).eval()
                val_logits = upper_logits(top, hidden_val, choice)
                if config.ensemble and stop_idx:
                    tfidf_fit = TfidfClassifier.fit(
                        [texts[i] for i in fit_idx], [y_train[i] for i in fit_idx], len(label_list)
                    )
                    stop_probs = torch.softmax(upper_logits(top, [hidden_train[i] for i in stop_idx], choice), -1)
                    ensemble_weight, losses = choose_ensemble_weight(
                        stop_probs,
                        tfidf_fit.predict_proba([texts[i] for i in stop_idx]),
                        torch.tensor([y_train[i] for i in stop_idx]),
                    )
                    extra_info["ensemble_losses"] = losses
                val_probs = torch.softmax(val_logits, -1)
                if ensemble_weight < 1.0:
                    tfidf_model = baselines["tfidf_lr"][1]
                    val_probs = ensemble_weight * val_probs + (1 - ensemble_weight) * baselines["tfidf_lr"][0]
                metrics = _prob_metrics(val_probs, torch.tensor(y_val), label_list)
                with torch.no_grad():
                    model.head.weight.mul_(LOGIT_SCALE)  # the artifact's head takes plain unit embeddings
            else:
                assert spec.evaluate is not None
                metrics = spec.evaluate(trained)
        metrics["validation_source"] = validation_note
        metrics["baselines"] = {
            name: {
                "title": BASELINE_TITLES[name],
                **_compact(_prob_metrics(probs, torch.tensor(y_val), label_list)),
            }
            for name, (probs, _) in baselines.items()
        }
        metrics["beats_baselines"] = {
            name: metrics["accuracy"] > b["accuracy"] and metrics["macro_f1"] > b["macro_f1"]
            for name, b in metrics["baselines"].items()
        }
        metrics["beats_majority"] = metrics["beats_baselines"]["majority"]
        # What the run did rather than how the model scores: the card shows it apart from the validation metrics.
        metrics["training"] = {
            "examples_per_s": outcome.examples_per_s,
            "n_train_examples": len(texts),
            "max_length": max_len,
            "steps_per_epoch": outcome.steps_per_epoch,
            "n_truncated": sum(1 for row in tok_train if len(row) >= max_len),
        }
        if config.method == "finetune":
            metrics["training"].update(
                {
                    "train_layers": len(model.encoder.encoder.layer) - keep,
                    "early_stopping_examples": len(stop_idx),
                    "best_step": outcome.best_step,
                    "ensemble_weight_encoder": ensemble_weight,
                    **extra_info,
                }
            )
        if outcome.eval_history:
            metrics["eval_history"] = [[s, m["val_loss"]] for s, m in outcome.eval_history]

        result = TrainResult(
            kind="classifier",
            method=config.method,
            metrics=metrics,
            artifact_dir=Path(output_dir),
            artifact_size_bytes=0,
            loss_history=outcome.loss_history,
            library_versions=library_versions(),
            base_model_id=ref.model_id,
            base_model_sha256=ref.sha256,
            seeds={"seed": config.seed},
            config=config.to_dict(),
            device=choice.name,
            precision=choice.precision,
            steps=outcome.steps,
            train_examples=len(texts),
            resumed_from_step=outcome.resumed_from_step,
            examples_per_s=outcome.examples_per_s,
        )
        if outcome.is_main_process:
            with atomic_output_dir(Path(output_dir)) as scratch:
                self._save(
                    scratch, model.cpu(), tokenizer, ref, label_list, config, max_len, tfidf_model, ensemble_weight
                )
                result.duration_s = time.perf_counter() - started
                result.artifact_size_bytes = dir_size(scratch)
                write_json(scratch / "training_info.json", {**result.to_dict(), "artifact_dir": None})
            clear_checkpoints(checkpoint_dir)
        return result

    def _head_spec(
        self,
        train_x: torch.Tensor,
        y_train: list[int],
        val_x: torch.Tensor,
        y_val: list[int],
        model: TextClassifier,
        config: TrainConfig,
        fingerprint: str,
        label_list: list[str],
    ) -> LoopSpec:
        train_y = torch.tensor(y_train)
        val_y = torch.tensor(y_val)

        def batches_for_epoch(epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
            order = _epoch_order(len(y_train), config.seed, epoch)
            return [(train_x[chunk], train_y[chunk]) for chunk in torch.split(order, config.batch_size)]

        def loss_fn(head: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            x, y = batch
            device = next(head.parameters()).device
            return nn.functional.cross_entropy(head(x.to(device)).float(), y.to(device))

        def evaluate(head: nn.Module) -> dict[str, Any]:
            head.eval()
            device = next(head.parameters()).device
            with torch.no_grad():
                logits = head(val_x.to(device)).float().cpu()
            return _val_metrics(logits, val_y, label_list)

        return LoopSpec(
            model=model.head,
            batches_for_epoch=batches_for_epoch,
            loss_fn=loss_fn,
            batch_examples=lambda batch: len(batch[1]),
            fingerprint=fingerprint,
            evaluate=evaluate,
        )

    def _full_spec(
        self,
        model: TextClassifier,
        tok_train: list[list[int]],
        y_train: list[int],
        tok_val: list[list[int]],
        y_val: list[int],
        pad_id: int,
        config: TrainConfig,
        fingerprint: str,
        label_list: list[str],
    ) -> LoopSpec:
        train_y = torch.tensor(y_train)
        val_y = torch.tensor(y_val)

        def batches_for_epoch(epoch: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
            order = _epoch_order(len(y_train), config.seed, epoch)
            out = []
            for chunk in torch.split(order, config.batch_size):
                ids, mask = pad_batch([tok_train[i] for i in chunk.tolist()], pad_id)
                out.append((ids, mask, train_y[chunk]))
            return out

        def loss_fn(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
            ids, mask, y = batch
            device = next(m.parameters()).device
            return nn.functional.cross_entropy(m(ids.to(device), mask.to(device)), y.to(device))

        def evaluate(m: nn.Module) -> dict[str, Any]:
            m.eval()
            device = next(m.parameters()).device
            logits = []
            with torch.no_grad():
                for chunk in iter_chunks(list(range(len(tok_val))), EMBED_BATCH):
                    ids, mask = pad_batch([tok_val[i] for i in chunk], pad_id)
                    logits.append(m(ids.to(device), mask.to(device)).float().cpu())
            return _val_metrics(torch.cat(logits), val_y, label_list)

        return LoopSpec(
            model=model,
            batches_for_epoch=batches_for_epoch,
            loss_fn=loss_fn,
            batch_examples=lambda batch: len(batch[2]),
            fingerprint=fingerprint,
            evaluate=evaluate,
        )

    def _finetune_spec(
        self,
        model: TextClassifier,
        keep: int,
        hidden_train: list[torch.Tensor],
        y_train: list[int],
        fit_idx: list[int],
        stop_idx: list[int],
        pad_id: int,
        config: TrainConfig,
        fingerprint: str,
        label_list: list[str],
    ) -> LoopSpec:
        for p in model.encoder.parameters():
            p.requires_grad_(False)
        top = UpperEncoder(model, keep)
        for p in top.parameters():
            p.requires_grad_(True)
        train_y = torch.tensor(y_train)
        counts = torch.bincount(train_y[fit_idx], minlength=len(label_list)).float()
        # Class-weighted: a rare class (neutral in the demo) costs as much in total as a frequent one.
        weight = torch.where(
            counts > 0, counts.sum() / (len(label_list) * counts.clamp(min=1)), torch.zeros_like(counts)
        )
        lengths = [hidden_train[i].shape[0] for i in fit_idx]

        def batches_for_epoch(epoch: int) -> list[list[int]]:
            order = _epoch_order(len(fit_idx), config.seed, epoch).tolist()
            # Sorted by length inside windows of 8 batches: little padding, and batches still differ every epoch.
            window = config.batch_size * 8
            out = []
            for start in range(0, len(order), window):
                chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
                out.extend(
                    [fit_idx[i] for i in chunk[j : j + config.batch_size]]
                    for j in range(0, len(chunk), config.batch_size)
                )
            return out

        def loss_fn(m: nn.Module, batch: list[int]) -> torch.Tensor:
            device = next(m.parameters()).device
            logits = m([hidden_train[i] for i in batch], device)
            return nn.functional.cross_entropy(logits.float(), train_y[batch].to(device), weight=weight.to(device))

        def evaluate(m: nn.Module) -> dict[str, Any]:
            device = next(m.parameters()).device
            rows = [hidden_train[i] for i in stop_idx]
            logits = upper_logits(m, rows, None, device=device)
            loss = float(nn.functional.cross_entropy(logits, train_y[stop_idx]).item())
            return {"val_loss": loss if math.isfinite(loss) else None, "split": "early-stopping slice of training"}

        return LoopSpec(
            model=top,
            batches_for_epoch=batches_for_epoch,
            loss_fn=loss_fn,
            batch_examples=len,
            fingerprint=fingerprint,
            evaluate=evaluate if stop_idx else None,
            param_groups=[
                ([p for p in top.layers.parameters()], 1.0),
                ([p for p in top.head.parameters()], HEAD_LR_SCALE),
            ],
            early_stopping_patience=2 if stop_idx else None,
        )

    def _save(
        self,
        folder: Path,
        model: TextClassifier,
        tokenizer: Any,
        ref: BaseModelRef,
        labels: list[str],
        config: TrainConfig,
        max_len: int,
        tfidf: TfidfClassifier | None = None,
        ensemble_weight: float = 1.0,
    ) -> None:
        include_encoder = config.method in ("full", "finetune")
        if tfidf is not None:
            tfidf.save(folder)
        head = {k: v.detach().contiguous() for k, v in model.head.state_dict().items()}
        save_file(head, str(folder / "head.safetensors"), metadata={"format": "pt"})
        if include_encoder:
            model.encoder.save_pretrained(folder / "encoder")
            tokenizer.save_pretrained(folder / "encoder")
        encoder_info = ref.to_dict()
        encoder_info["included"] = include_encoder
        write_json(
            folder / "config.json",
            {
                "format": ARTIFACT_FORMAT,
                "version": 1,
                "method": config.method,
                "labels": labels,
                "encoder": encoder_info,
                "pooling": "mean",
                "normalize": model.normalize,
                "max_length": max_len,
                "hidden_size": model.head.in_features,
                # Served probabilities: w * encoder's + (1 - w) * the tf-idf model's (files tfidf*.*).
                "ensemble": {"encoder_weight": ensemble_weight, "tfidf": tfidf is not None},
            },
        )
        write_json(folder / "labels.json", labels)


def _hold_out(texts: list[str], labels: list[str], seed: int) -> tuple[list[str], list[str], list[str], list[str], str]:
    """20% held out by a seeded shuffle; too small a set is validated on its own training data (and says so)."""
    if len(texts) < 10:
        return texts, labels, texts, labels, "training data (too few records to hold out a validation split)"
    order = _epoch_order(len(texts), seed, -1).tolist()
    n_val = max(1, len(texts) // 5)
    val_idx, train_idx = order[:n_val], order[n_val:]
    return (
        [texts[i] for i in train_idx],
        [labels[i] for i in train_idx],
        [texts[i] for i in val_idx],
        [labels[i] for i in val_idx],
        "20% held out from the training data",
    )


def _epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    # A generator of its own: the order depends only on (seed, epoch), so a resumed run sees the same batches.
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch + 7)
    return torch.randperm(n, generator=generator)


def tokenize_all(tokenizer: Any, texts: list[str], max_len: int, meter: PhaseMeter | None = None) -> list[list[int]]:
    """Token ids of each text, cut at `max_len`, in chunks so a long tokenizing pass reports its progress."""
    out: list[list[int]] = []
    for chunk in iter_chunks(texts, TOKENIZE_BATCH):
        out.extend(tokenizer(chunk, truncation=True, max_length=max_len)["input_ids"])
        if meter is not None:
            meter.advance(len(chunk))
    return out


def embed_all(
    model: TextClassifier, rows: list[list[int]], pad_id: int, choice: DeviceChoice, meter: PhaseMeter | None = None
) -> torch.Tensor:
    """Pooled embeddings in input order; batches are formed by length so little compute goes to padding."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    out = torch.empty((len(rows), model.head.in_features))
    autocast = (
        torch.autocast(choice.device.type, dtype=choice.autocast_dtype)
        if choice.autocast_dtype is not None
        else torch.autocast("cpu", enabled=False)
    )
    with torch.no_grad(), autocast:
        for chunk in iter_chunks(order, EMBED_BATCH):
            ids, mask = pad_batch([rows[i] for i in chunk], pad_id)
            out[chunk] = model.embed(ids.to(choice.device), mask.to(choice.device)).float().cpu()
            if meter is not None:
                meter.advance(len(chunk))
    return out


def _val_metrics(logits: torch.Tensor, y: torch.Tensor, labels: list[str]) -> dict[str, Any]:
    return _prob_metrics(torch.softmax(logits.float(), dim=-1), y, labels)


class UpperEncoder(nn.Module):
    """The encoder's top layers and the head, run on the cached output of the frozen layers below them."""

    def __init__(self, model: TextClassifier, keep: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(model.encoder.encoder.layer[keep:])
        self.head = model.head

    def forward(self, rows: list[torch.Tensor], device: torch.device) -> torch.Tensor:
        width = max(r.shape[0] for r in rows)
        x = torch.zeros((len(rows), width, rows[0].shape[1]), device=device)
        mask = torch.zeros((len(rows), width), device=device)
        for i, r in enumerate(rows):
            x[i, : r.shape[0]] = r.to(device)
            mask[i, : r.shape[0]] = 1
        additive = (1.0 - mask[:, None, None, :]) * torch.finfo(torch.float32).min
        for layer in self.layers:
            out = layer(x, attention_mask=additive)
            x = out[0] if isinstance(out, tuple) else out
        pooled = nn.functional.normalize(mean_pool(x, mask), dim=-1)
        return self.head(pooled.float() * LOGIT_SCALE)


def cache_hidden(
    model: TextClassifier,
    rows: list[list[int]],
    pad_id: int,
    choice: DeviceChoice,
    keep: int,
    meter: PhaseMeter | None = None,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Per text: the hidden states entering layer `keep` (unpadded, on the CPU), and the frozen encoder's pooled
    embedding (the baseline's input), from one pass."""
    layers = getattr(getattr(model.encoder, "encoder", None), "layer", None)
    if layers is None:
        raise BaseModelError("method finetune needs a BERT-style encoder (encoder.layer); use method full or head")
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    hidden: list[torch.Tensor] = [torch.empty(0)] * len(rows)
    pooled = torch.empty((len(rows), model.head.in_features))
    autocast = (
        torch.autocast(choice.device.type, dtype=choice.autocast_dtype)
        if choice.autocast_dtype is not None
        else torch.autocast("cpu", enabled=False)
    )
    with torch.no_grad(), autocast:
        for chunk in iter_chunks(order, EMBED_BATCH):
            ids, mask = pad_batch([rows[i] for i in chunk], pad_id)
            ids, mask = ids.to(choice.device), mask.to(choice.device)
            out = model.encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            last = mean_pool(out.last_hidden_state.float(), mask)
            pooled[chunk] = (nn.functional.normalize(last, dim=-1) if model.normalize else last).cpu()
            states = out.hidden_states[keep].float().cpu()
            for j, i in enumerate(chunk):
                hidden[i] = states[j, : len(rows[i])].clone()
            if meter is not None:
                meter.advance(len(chunk))
    return hidden, pooled


def upper_logits(
    top: nn.Module, rows: list[torch.Tensor], choice: DeviceChoice | None, *, device: torch.device | None = None
) -> torch.Tensor:
    device = device or (choice.device if choice is not None else torch.device("cpu"))
    out = torch.empty((len(rows), top.head.out_features))
    order = sorted(range(len(rows)), key=lambda i: rows[i].shape[0])
    top.eval()
    with torch.no_grad():
        for chunk in iter_chunks(order, EMBED_BATCH):
            out[chunk] = top([rows[i] for i in chunk], device).float().cpu()
    return out


def choose_ensemble_weight(
    encoder_probs: torch.Tensor, tfidf_probs: torch.Tensor, y: torch.Tensor
) -> tuple[float, dict[str, float]]:
    """The encoder's weight (of ENSEMBLE_WEIGHTS) whose averaged probabilities give the lowest log loss."""
    losses = {}
    for w in ENSEMBLE_WEIGHTS:
        probs = (w * encoder_probs + (1 - w) * tfidf_probs).clamp(min=1e-9)
        losses[str(w)] = float(nn.functional.nll_loss(probs.log(), y).item())
    best = min(ENSEMBLE_WEIGHTS, key=lambda w: losses[str(w)])
    return best, losses


def length_from_data(rows: list[list[int]], cap: int) -> int:
    """The 95th percentile of the token lengths, rounded up to a multiple of 8, at least 16 and at most `cap`."""
    lengths = sorted(len(r) for r in rows)
    p95 = lengths[min(len(lengths) - 1, math.ceil(0.95 * len(lengths)) - 1)]
    return max(16, min(cap, -(-p95 // 8) * 8))


def truncate_rows(rows: list[list[int]], max_len: int) -> list[list[int]]:
    """Cut as the tokenizer's truncation does (and as serving does): the first max_len - 1 ids and the closing one."""
    return [row if len(row) <= max_len else row[: max_len - 1] + row[-1:] for row in rows]


def _prob_metrics(probs: torch.Tensor, y: torch.Tensor, labels: list[str]) -> dict[str, Any]:
    loss = float(nn.functional.nll_loss(probs.clamp(min=1e-9).log(), y).item())
    metrics = classification_metrics(y.tolist(), probs.argmax(-1).tolist(), labels)
    metrics["val_loss"] = loss if math.isfinite(loss) else None
    metrics["labels_predicted"] = sorted({labels[i] for i in probs.argmax(-1).tolist()})
    return metrics


def _compact(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics[k] for k in ("accuracy", "macro_f1", "per_label", "labels_predicted")}
