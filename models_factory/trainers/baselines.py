"""Baselines a text classifier must beat, computed in the same run (seconds): the majority class, tf-idf over 1-2
word grams with class-balanced logistic regression, and logistic regression on the frozen encoder's embeddings.

Written in numpy/torch rather than scikit-learn so that the tf-idf model can also be saved with an artifact and
served (the default recipe averages its probabilities with the fine-tuned encoder's). The definitions follow
scikit-learn's defaults (``TfidfVectorizer(ngram_range=(1, 2))``: lower-cased ``\\b\\w\\w+\\b`` tokens, smoothed idf,
l2-normalised rows; ``LogisticRegression(class_weight="balanced", C=1.0)``); benchmarks/training checks the figures
against scikit-learn where it is installed.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

DENSE_LIMIT = 64_000_000
TOKEN = re.compile(r"(?u)\b\w\w+\b")


def _grams(text: str) -> list[str]:
    words = TOKEN.findall(text.lower())
    return words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]


class Tfidf:
    """Word 1-2 gram tf-idf with l2-normalised rows."""

    def __init__(self, vocabulary: dict[str, int], idf: np.ndarray) -> None:
        self.vocabulary = vocabulary
        self.idf = idf.astype(np.float32)

    @classmethod
    def fit(cls, texts: list[str]) -> Tfidf:
        df: Counter[str] = Counter()
        for text in texts:
            df.update(set(_grams(text)))
        vocabulary = {g: i for i, g in enumerate(sorted(df))}
        n = len(texts)
        idf = np.array([math.log((1 + n) / (1 + df[g])) + 1.0 for g in sorted(df)], dtype=np.float32)
        return cls(vocabulary, idf)

    def transform(self, texts: list[str]) -> torch.Tensor:
        rows, cols, vals = [], [], []
        for r, text in enumerate(texts):
            counts = Counter(i for g in _grams(text) if (i := self.vocabulary.get(g)) is not None)
            if not counts:
                continue
            idx = np.fromiter(counts.keys(), dtype=np.int64)
            w = np.fromiter(counts.values(), dtype=np.float32) * self.idf[idx]
            w /= np.linalg.norm(w) or 1.0
            rows.extend([r] * len(idx))
            cols.extend(idx.tolist())
            vals.extend(w.tolist())
        return torch.sparse_coo_tensor(
            torch.tensor([rows, cols], dtype=torch.long).reshape(2, -1),
            torch.tensor(vals, dtype=torch.float32),
            (len(texts), len(self.vocabulary)),
            check_invariants=False,
        ).coalesce()


class LogisticRegression:
    """Multinomial logistic regression, L2 (C as in scikit-learn: the weight of the data term), full-batch L-BFGS,
    optionally with class-balanced sample weights n / (k * n_class)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        self.weight = weight
        self.bias = bias

    @classmethod
    def fit(
        cls, x: torch.Tensor, y: list[int], n_classes: int, *, c: float = 1.0, balanced: bool = True
    ) -> LogisticRegression:
        target = torch.tensor(y, dtype=torch.long)
        counts = torch.bincount(target, minlength=n_classes).float()
        if balanced:
            class_w = torch.where(counts > 0, len(y) / (n_classes * counts.clamp(min=1)), torch.zeros_like(counts))
        else:
            class_w = torch.ones(n_classes)
        sample_w = class_w[target]
        # With more features than examples the L2 optimum lies in the span of the examples (W = X^T A), so the
        # problem is solved over the n x n Gram matrix: the same model, and far cheaper for tf-idf's wide rows.
        kernel = x.shape[1] > x.shape[0]
        if kernel:
            gram = (torch.sparse.mm(x, x.t()).to_dense() if x.is_sparse else x @ x.t()).float()
            coef = torch.zeros((x.shape[0], n_classes), requires_grad=True)
        else:
            dense = x.to_dense() if x.is_sparse else x
            coef = torch.zeros((x.shape[1], n_classes), requires_grad=True)
        bias = torch.zeros(n_classes, requires_grad=True)
        optimizer = torch.optim.LBFGS(
            [coef, bias],
            lr=1.0,
            max_iter=500,
            tolerance_grad=1e-7,
            tolerance_change=1e-10,
            line_search_fn="strong_wolfe",
        )

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            if kernel:
                projected = gram @ coef
                logits, penalty = projected + bias, (coef * projected).sum()
            else:
                logits, penalty = dense @ coef + bias, (coef**2).sum()
            data = (torch.nn.functional.cross_entropy(logits, target, reduction="none") * sample_w).sum()
            loss = (c * data + 0.5 * penalty) / len(y)
            loss.backward()
            return loss

        optimizer.step(closure)
        coef = coef.detach()
        weight = (torch.sparse.mm(x.t(), coef) if x.is_sparse else x.t() @ coef) if kernel else coef
        return cls(weight.contiguous(), bias.detach())

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            logits = (torch.sparse.mm(x, self.weight) if x.is_sparse else x @ self.weight) + self.bias
            return torch.softmax(logits, dim=-1)


class TfidfClassifier:
    """tf-idf + class-balanced logistic regression: a baseline, and the second half of the default ensemble."""

    FILES = ("tfidf_vocabulary.json", "tfidf.safetensors")

    def __init__(self, tfidf: Tfidf, lr: LogisticRegression) -> None:
        self.tfidf = tfidf
        self.lr = lr

    @classmethod
    def fit(cls, texts: list[str], y: list[int], n_classes: int) -> TfidfClassifier:
        tfidf = Tfidf.fit(texts)
        return cls(tfidf, LogisticRegression.fit(tfidf.transform(texts), y, n_classes))

    def predict_proba(self, texts: list[str]) -> torch.Tensor:
        return self.lr.predict_proba(self.tfidf.transform(texts))

    def save(self, folder: Path) -> None:
        (folder / self.FILES[0]).write_text(json.dumps(self.tfidf.vocabulary, ensure_ascii=False), encoding="utf-8")
        tensors = {"idf": torch.from_numpy(self.tfidf.idf), "weight": self.lr.weight, "bias": self.lr.bias}
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / self.FILES[1]))

    @classmethod
    def load(cls, folder: Path) -> TfidfClassifier:
        vocabulary = json.loads((folder / cls.FILES[0]).read_text(encoding="utf-8"))
        tensors = load_file(str(folder / cls.FILES[1]))
        return cls(Tfidf(vocabulary, tensors["idf"].numpy()), LogisticRegression(tensors["weight"], tensors["bias"]))


def majority_proba(y_train: list[int], n_classes: int, n: int) -> torch.Tensor:
    counts = torch.bincount(torch.tensor(y_train), minlength=n_classes)
    out = torch.zeros((n, n_classes))
    out[:, int(counts.argmax())] = 1.0
    return out


def baseline_probabilities(
    *,
    train_texts: list[str],
    y_train: list[int],
    val_texts: list[str],
    train_embeddings: torch.Tensor,
    val_embeddings: torch.Tensor,
    n_classes: int,
) -> dict[str, tuple[torch.Tensor, Any]]:
    """{name: (validation probabilities, fitted model or None)} for the three baselines, fit on the training split."""
    tfidf = TfidfClassifier.fit(train_texts, y_train, n_classes)
    frozen = LogisticRegression.fit(train_embeddings.float(), y_train, n_classes)
    return {
        "majority": (majority_proba(y_train, n_classes, len(val_texts)), None),
        "tfidf_lr": (tfidf.predict_proba(val_texts), tfidf),
        "frozen_encoder_lr": (frozen.predict_proba(val_embeddings.float()), frozen),
    }


BASELINE_TITLES = {
    "majority": "majority class",
    "tfidf_lr": "tf-idf (1-2 grams) + class-balanced logistic regression",
    "frozen_encoder_lr": "logistic regression on the frozen encoder's embeddings",
}
