"""Loaded models kept per process: a few classifiers, and one generative server (one base, many LoRA adapters)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

_lock = threading.Lock()
_classifiers: OrderedDict[str, Any] = OrderedDict()
_generative: Any = None
MAX_CLASSIFIERS = 4


def classifier(artifact_dir: str) -> Any:
    from models_factory.serving.classifier import ClassifierPredictor

    with _lock:
        if artifact_dir in _classifiers:
            _classifiers.move_to_end(artifact_dir)
            return _classifiers[artifact_dir]
        predictor = ClassifierPredictor.load(artifact_dir)
        _classifiers[artifact_dir] = predictor
        while len(_classifiers) > MAX_CLASSIFIERS:
            _classifiers.popitem(last=False)
        return predictor


def generative() -> Any:
    global _generative
    from models_factory.serving.generative import GenerativeServer

    with _lock:
        if _generative is None:
            _generative = GenerativeServer(max_adapters=8)
        return _generative
