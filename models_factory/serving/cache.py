"""Loaded models kept per process: a few classifiers, one generative server (one base, many LoRA adapters) and the
sentence encoders. torch loads on first use, not on import."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models_factory.serving.classifier import ClassifierPredictor
    from models_factory.serving.encoders import SentenceEncoder
    from models_factory.serving.generative import GenerativeServer

_lock = threading.Lock()
_classifiers: OrderedDict[str, ClassifierPredictor] = OrderedDict()
_generative: GenerativeServer | None = None
_encoders: dict[str, SentenceEncoder] = {}
MAX_CLASSIFIERS = 4


def classifier(artifact_dir: str) -> ClassifierPredictor:
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


def generative() -> GenerativeServer:
    global _generative
    from models_factory.serving.generative import GenerativeServer

    with _lock:
        if _generative is None:
            _generative = GenerativeServer(max_adapters=8)
        return _generative


def sentence_encoder(spec: str) -> SentenceEncoder:
    """The packaged sentence encoder `spec` (for example "minilm"), loaded once per process."""
    from models_factory.serving.encoders import SentenceEncoder

    with _lock:
        if spec not in _encoders:
            _encoders[spec] = SentenceEncoder.load(spec)
        return _encoders[spec]
