"""Django-free serving: classifier artifacts and many LoRA adapters on one shared base model."""

from models_factory.serving.classifier import ClassifierPredictor
from models_factory.serving.generative import GenerativeServer

__all__ = ["ClassifierPredictor", "GenerativeServer"]
