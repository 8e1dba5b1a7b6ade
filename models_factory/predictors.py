"""The loaded model behind a registered version, from the per-process cache: what inference and attribution call.

The predictors themselves (``serving/``) know nothing of Django; this is where a version's artifact location becomes
a local folder they can load."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from models_factory.artifacts import artifact_local_path
from models_factory.models import ModelVersion
from models_factory.serving import cache

if TYPE_CHECKING:
    from models_factory.serving.classifier import ClassifierPredictor
    from models_factory.serving.encoders import SentenceEncoder
    from models_factory.serving.generative import GenerativeServer


def classifier_predictor(version: ModelVersion) -> ClassifierPredictor:
    return cache.classifier(str(artifact_local_path(version.artifact_location)))


def generative_server() -> GenerativeServer:
    return cache.generative()


def version_tokenizer(version: ModelVersion) -> Any:
    """The tokenizer saved with a generative version's artifact (loaded afresh)."""
    from models_factory.serving.generative import artifact_tokenizer

    return artifact_tokenizer(artifact_local_path(version.artifact_location))


def sentence_encoder(spec: str) -> SentenceEncoder:
    return cache.sentence_encoder(spec)
