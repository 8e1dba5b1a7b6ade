"""The embedding helpers send their inputs to the device the model lives on (a CUDA worker would fail otherwise),
and hand back CPU arrays. Tested with torch's "meta" device, which no CPU tensor can meet by accident."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from models_factory.serving.classifier import ClassifierPredictor
from models_factory.serving.encoders import SentenceEncoder
from models_factory.trainers.device import DeviceChoice

META = torch.device("meta")


class FakeTokenizer:
    pad_token_id = 0

    def __call__(self, texts: list[str], **kwargs: Any) -> dict[str, Any]:
        rows = [[1 + (ord(c) % 50) for c in text] for text in texts]
        if kwargs.get("return_tensors") != "pt":
            return {"input_ids": rows}
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
        return {"input_ids": ids, "attention_mask": (ids != 0).long()}


class FakeClassifier(torch.nn.Module):
    """A TextClassifier's shape: ``embed(ids, mask)`` and a linear head; records where its inputs were."""

    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Linear(4, 2)
        self.seen: list[torch.device] = []

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        self.seen += [input_ids.device, attention_mask.device]
        return torch.ones(len(input_ids), 4)


class FakeEncoder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(4, 4)
        self.seen: list[torch.device] = []

    def forward(self, **batch: torch.Tensor) -> Any:
        self.seen += [t.device for t in batch.values()]
        ids = batch["input_ids"]
        return SimpleNamespace(last_hidden_state=torch.ones(ids.shape[0], ids.shape[1], 4))


def predictor_on(device: torch.device, model: torch.nn.Module) -> ClassifierPredictor:
    choice = DeviceChoice(device=device, autocast_dtype=None)
    return ClassifierPredictor(model, FakeTokenizer(), ["a", "b"], choice, max_input_tokens=512, max_length=8)


def test_classifier_embeddings_put_inputs_on_the_models_device_and_come_back_to_the_cpu() -> None:
    model = FakeClassifier()
    predictor = predictor_on(META, model)
    assert model.head.weight.device == META  # the predictor moved the model there
    out = predictor.embed(["short", "a much longer text than the limit"], batch_size=1)
    assert model.seen and set(model.seen) == {META}
    assert isinstance(out, np.ndarray) and out.shape == (2, 4) and out.dtype == np.float32


def test_classifier_embeddings_truncate_like_training() -> None:
    model = FakeClassifier()
    lengths: list[int] = []
    model.embed = lambda ids, mask: lengths.extend(mask.sum(1).tolist()) or torch.ones(len(ids), 4)  # type: ignore[method-assign]
    predictor_on(torch.device("cpu"), model).embed(["abc", "x" * 20])
    assert lengths == [3, 8]


class Moved:
    """A tokenizer output that records which device it is sent to (and stays a CPU tensor, so the meta device
    never has to produce values)."""

    def __init__(self, tensor: torch.Tensor, sent_to: list[torch.device]) -> None:
        self.tensor, self.sent_to = tensor, sent_to

    def to(self, device: torch.device) -> torch.Tensor:
        self.sent_to.append(torch.device(device))
        return self.tensor


def test_sentence_encoder_puts_inputs_on_the_encoders_device() -> None:
    sent_to: list[torch.device] = []
    tokenizer = FakeTokenizer()

    def tokenize(texts: list[str], **kwargs: Any) -> dict[str, Moved]:
        return {key: Moved(value, sent_to) for key, value in FakeTokenizer.__call__(tokenizer, texts, **kwargs).items()}

    encoder = FakeEncoder().to(META)
    out = SentenceEncoder(encoder, tokenize).embed(["one", "two words", "three"], batch_size=2)
    assert len(sent_to) == 4 and set(sent_to) == {META}  # input_ids and attention_mask of two batches
    assert len(encoder.seen) == 4
    assert out.shape == (3, 4) and np.allclose(np.linalg.norm(out, axis=1), 1.0)


def test_gradient_head_is_trainable_and_on_the_cpu() -> None:
    model = FakeClassifier()
    for p in model.head.parameters():
        p.requires_grad_(False)
    predictor = predictor_on(torch.device("cpu"), model)
    head = predictor.gradient_head()
    assert head is model.head and all(p.requires_grad for p in head.parameters())
    loss = predictor.per_example_loss(torch.zeros(3, 2), torch.tensor([0, 1, 0]))
    assert loss.shape == (3,)


class FakeLM(torch.nn.Module):
    """A causal LM's generate(): records where its inputs were and answers with one token."""

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1, device=device))
        self.seen: list[torch.device] = []

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        self.seen += [input_ids.device, attention_mask.device]
        scores = torch.zeros(input_ids.shape[0], 40, device=input_ids.device)
        for processor in kwargs["logits_processor"]:
            scores = processor(input_ids, scores)  # the visible-first-token mask must meet scores on their device
        self.seen.append(scores.device)
        rows = torch.zeros(input_ids.shape[0], input_ids.shape[1] + 1, dtype=torch.long)
        rows[:, -1] = 7
        return rows


def test_generation_inputs_and_logit_masks_go_to_the_models_device() -> None:
    from models_factory.trainers.base_models import train_tiny_tokenizer
    from models_factory.trainers.generative import generate_batch

    tokenizer = train_tiny_tokenizer(["hello world, the capital of region three"], vocab_size=40)
    model = FakeLM(META)
    answers = generate_batch(model, tokenizer, ["hello", "the capital of region three"], max_new_tokens=4)
    assert len(answers) == 2 and model.seen and all(d == META for d in model.seen)
