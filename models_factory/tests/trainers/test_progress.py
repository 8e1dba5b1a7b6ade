"""What a trainer reports before and during its steps: phases with counts, a fractional epoch, training figures
kept apart from validation metrics, and long generative records truncated rather than dropped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from models_factory.tests.trainers.conftest import color_records, review_data
from models_factory.trainers.base_models import load_causal_lm, resolve_local
from models_factory.trainers.classifier import ClassifierTrainer
from models_factory.trainers.common import NullCallbacks, PhaseMeter, TrainConfig
from models_factory.trainers.errors import Cancelled
from models_factory.trainers.generative import IGNORE, LoRATrainer, encode_example, prompt_text


class Timeline(NullCallbacks):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_phase(self, phase: str, done: int, total: int, unit: str, rate: float, eta_s: float | None) -> None:
        self.events.append(("phase", (phase, done, total, unit)))

    def on_progress(
        self, step: int, total_steps: int, epoch: float, loss: float, examples_per_s: float, eta_s: float
    ) -> None:
        self.events.append(("step", (step, total_steps, epoch)))


def test_head_run_reports_tokenizing_and_embedding_before_its_first_step(tmp_path: Path) -> None:
    texts, labels = review_data()  # 40 texts: 32 train, 8 held out
    timeline = Timeline()
    config = TrainConfig(method="head", epochs=2, batch_size=8, lr=0.05, max_length=32)
    result = ClassifierTrainer().train(
        texts=texts, labels=labels, config=config, output_dir=tmp_path / "a", callbacks=timeline
    )
    first_step = next(i for i, (kind, _) in enumerate(timeline.events) if kind == "step")
    phases = [payload for kind, payload in timeline.events[:first_step]]
    assert phases[0] == ("tokenizing", 0, 40, "texts") and ("tokenizing", 40, 40, "texts") in phases
    assert ("embedding", 0, 40, "texts") in phases and ("embedding", 40, 40, "texts") in phases
    assert phases[-1] == ("training", 0, 8, "steps")
    steps = [payload for kind, payload in timeline.events if kind == "step"]
    # 32 examples / batch 8 = 4 steps an epoch: a quarter into the first epoch reads 0.25, not 1.00.
    assert [epoch for _, _, epoch in steps] == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    assert "train_examples_per_s" not in result.metrics and result.metrics["training"]["examples_per_s"] > 0
    assert result.examples_per_s == result.metrics["training"]["examples_per_s"]


def test_a_cancel_during_a_phase_stops_the_run_there() -> None:
    class CancelNow(NullCallbacks):
        def should_cancel(self) -> bool:
            return True

    meter = PhaseMeter(CancelNow(), "embedding", 10, unit="texts")
    with pytest.raises(Cancelled, match="cancelled while embedding \\(3 of 10 texts\\)"):
        meter.advance(3)


def test_long_records_keep_their_answer_and_lose_the_prompt_end(tiny_base: Path) -> None:
    _, tokenizer = load_causal_lm(resolve_local(str(tiny_base)))
    prompt = "What color is the apple? " + "red green blue " * 40
    response = "The apple is red."
    ids, labels, truncated = encode_example(tokenizer, prompt, response, 48)
    assert truncated and len(ids) <= 48
    answer = [t for t in labels if t != IGNORE]
    full_ids, full_labels, was_cut = encode_example(tokenizer, "What color is the apple?", response, 512)
    assert not was_cut and answer == [t for t in full_labels if t != IGNORE]  # the whole answer, unchanged
    head = tokenizer.decode(ids[: len(ids) - len(answer)])
    assert head.startswith(tokenizer.decode(tokenizer(prompt_text(tokenizer, "What color"))["input_ids"][:3]))
    assert len(full_ids) > len(answer)


def test_lora_truncates_rather_than_drops_and_counts_it(tmp_path: Path) -> None:
    long = [{**r, "context": "background " * 60} for r in color_records()]
    timeline = Timeline()
    config = TrainConfig(method="lora", epochs=1, batch_size=4, max_length=40, max_steps=2)
    result = LoRATrainer("tiny").train(
        records=long, config=config, output_dir=tmp_path / "g", callbacks=timeline, n_samples=0
    )
    training = result.metrics["training"]
    assert training["n_train_examples"] == result.train_examples == 8  # 10 records, 2 held out; none dropped
    assert training["n_truncated"] == 8 and "n_dropped_too_long" not in result.metrics
    assert ("phase", ("tokenizing", 10, 10, "records")) in timeline.events
