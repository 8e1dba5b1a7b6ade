from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from models_factory.serving.generative import artifact_tokenizer
from models_factory.tests.trainers.conftest import Recorder, WorkerKilled, color_records, sum_records
from models_factory.trainers.common import TrainConfig
from models_factory.trainers.errors import BaseModelError, Cancelled, ConfigError, DataError, TrainingFailed
from models_factory.trainers.generative import LoRATrainer

LORA = TrainConfig(method="lora", epochs=3, batch_size=4, lr=1e-2, max_length=48, seed=1, checkpoint_every=2)


def records() -> list[dict[str, str]]:
    return color_records() + sum_records()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("lora") / "adapter"
    return out, LoRATrainer("tiny").train(records=records(), config=LORA, output_dir=out)


def test_tiny_lora_writes_a_peft_adapter_with_lineage(uninterrupted: tuple[Path, object]) -> None:
    out, result = uninterrupted
    names = {p.name for p in out.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "generative.json"} <= names
    assert (out / "base_model" / "config.json").is_file()
    meta = json.loads((out / "generative.json").read_text())
    assert meta["base"]["spec"] == "tiny" and meta["prompt_format"] == "plain"
    assert len(result.base_model_sha256) == 64  # type: ignore[attr-defined]
    metrics = result.metrics  # type: ignore[attr-defined]
    assert metrics["perplexity"] > 1 and metrics["val_loss"] > 0
    assert len(metrics["samples"]) == 3 and {"prompt", "reference", "generated"} <= set(metrics["samples"][0])
    assert result.loss_history[-1][1] < result.loss_history[0][1]  # type: ignore[attr-defined]


def test_same_seed_gives_the_same_metrics(uninterrupted: tuple[Path, object], tmp_path: Path) -> None:
    again = LoRATrainer("tiny").train(records=records(), config=LORA, output_dir=tmp_path / "again")
    assert again.loss_history == uninterrupted[1].loss_history  # type: ignore[attr-defined]
    assert again.metrics["val_loss"] == uninterrupted[1].metrics["val_loss"]  # type: ignore[attr-defined]


def test_killed_run_resumes_and_matches_an_uninterrupted_run(
    uninterrupted: tuple[Path, object], tmp_path: Path
) -> None:
    ckpt, out = tmp_path / "ckpt", tmp_path / "adapter"
    with pytest.raises(WorkerKilled):
        LoRATrainer("tiny").train(
            records=records(), config=LORA, output_dir=out, checkpoint_dir=ckpt, callbacks=Recorder(crash_at=5)
        )
    assert not out.exists(), "a killed run must not leave an artifact"
    resumed = LoRATrainer("tiny").train(records=records(), config=LORA, output_dir=out, checkpoint_dir=ckpt)
    assert resumed.resumed_from_step == 4
    expected = load_file(str(uninterrupted[0] / "adapter_model.safetensors"))
    got = load_file(str(out / "adapter_model.safetensors"))
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert resumed.metrics["val_loss"] == uninterrupted[1].metrics["val_loss"]  # type: ignore[attr-defined]


def test_cancel_stops_the_run_without_an_artifact(tmp_path: Path) -> None:
    recorder = Recorder(cancel_after=2)
    with pytest.raises(Cancelled, match="cancelled at step 2"):
        LoRATrainer("tiny").train(
            records=records(), config=LORA, output_dir=tmp_path / "a", checkpoint_dir=tmp_path / "c", callbacks=recorder
        )
    assert not (tmp_path / "a").exists()
    assert recorder.checkpoints and not list((tmp_path / "c").iterdir())
    step, total, epoch, loss, rate, eta = recorder.progress[-1]
    # 5 steps an epoch: step 2 is 0.4 of the way through the first epoch (the counter used to read 1 here).
    assert (step, epoch) == (2, 0.4) and total == 15 and loss > 0 and rate > 0 and eta >= 0


def test_out_of_memory_fails_with_a_readable_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_memory(*args: object, **kwargs: object) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(torch.optim.AdamW, "step", no_memory)
    with pytest.raises(TrainingFailed, match="ran out of memory at batch size 4; lower batch_size or max_length"):
        LoRATrainer("tiny").train(records=records(), config=LORA, output_dir=tmp_path / "a")
    assert not (tmp_path / "a").exists()


def test_base_path_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(BaseModelError, match="does not exist"):
        LoRATrainer(str(tmp_path / "missing")).train(records=records(), config=LORA, output_dir=tmp_path / "a")


def test_base_folder_that_is_not_a_model(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("hello")
    with pytest.raises(BaseModelError, match="is not a model folder: it has no config.json"):
        LoRATrainer(str(folder)).train(records=records(), config=LORA, output_dir=tmp_path / "a")


def test_hub_id_not_in_the_local_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(BaseModelError, match="not in the local Hugging Face cache"):
        LoRATrainer("nobody/no-such-model").train(records=records(), config=LORA, output_dir=tmp_path / "a")


def test_local_folder_base_trains(tiny_base: Path, tmp_path: Path) -> None:
    config = TrainConfig(method="lora", epochs=1, batch_size=8, max_length=48, max_steps=1)
    result = LoRATrainer(str(tiny_base)).train(records=records(), config=config, output_dir=tmp_path / "a")
    assert result.steps == 1 and result.base_model_id == str(tiny_base.resolve())


def test_too_few_or_incomplete_records_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="at least 4 records; the snapshot has 2"):
        LoRATrainer("tiny").train(records=records()[:2], config=LORA, output_dir=tmp_path / "a")
    with pytest.raises(DataError, match="record 1 has no response"):
        LoRATrainer("tiny").train(
            records=[{"instruction": "a", "response": "b"}, {"instruction": "c"}] * 3, config=LORA, output_dir=tmp_path
        )


def test_out_of_range_hyperparameters_are_refused_before_any_work(tmp_path: Path) -> None:
    bad = TrainConfig(method="lora", lr=5.0, lora_r=0)
    with pytest.raises(ConfigError) as info:
        LoRATrainer("tiny").train(records=records(), config=bad, output_dir=tmp_path / "a")
    assert "lr must be in (0.0, 1.0], not 5.0" in str(info.value)
    assert "lora_r must be between 1 and 256, not 0" in str(info.value)
    with pytest.raises(ConfigError, match="method must be one of lora"):
        LoRATrainer("tiny").train(records=records(), config=TrainConfig(method="full"), output_dir=tmp_path)


def test_long_contexts_are_truncated_not_dropped_and_the_length_comes_from_the_data(tmp_path: Path) -> None:
    # One record in 40 has a long context: the default max length fits the others whole, and that one record keeps
    # its answer and loses the end of its context.
    train = [
        {
            "question": f"Capital of region {i}?",
            "answer": f"Town{i}.",
            "context": "filler words " * (60 if i == 0 else 2),
        }
        for i in range(40)
    ]
    val = [
        {"question": "Capital of region 3?", "answer": "Town3."},
        {"question": "Capital of region 9?", "answer": "Town9."},
    ]
    config = TrainConfig(method="lora", epochs=1, batch_size=8, max_length=0)
    result = LoRATrainer("tiny").train(records=train, val_records=val, config=config, output_dir=tmp_path / "a")
    training = result.metrics["training"]
    assert training["n_train_examples"] == 40 and training["n_truncated"] == 1
    assert training["max_length_source"].startswith("from the data")
    meta = json.loads((tmp_path / "a" / "generative.json").read_text())
    assert meta["max_length"] == training["max_length"] < 100
    assert result.config["max_length"] == 0  # what was asked for is stored as asked


def test_auto_max_length_keeps_the_longest_answer_whole() -> None:
    from models_factory.trainers.generative import MIN_PROMPT_TOKENS, auto_max_length

    lengths = [(20, 5)] * 99 + [(30, 200)]  # one long answer
    assert auto_max_length(lengths, frame=12, limit=2048) >= 200 + 12 + MIN_PROMPT_TOKENS
    assert auto_max_length([(20, 5)] * 99 + [(900, 5)], frame=12, limit=2048) == 32  # one long prompt: cut
    assert auto_max_length([(600, 5)] * 10, frame=12, limit=2048, cap=80) == 80  # a CPU's budget
    assert auto_max_length([(600, 5)] * 10, frame=12, limit=256) == 256


def test_answer_scores_and_the_lookup_baseline() -> None:
    from models_factory.trainers.generative import answer_key, lookup_answers, qa_accuracy

    q = "What condition was Lexapro taken for?"
    assert answer_key(q, "Lexapro was taken for Depression.") == "depression"
    scores = qa_accuracy(
        [q, q, q],
        ["Lexapro was taken for Depression."] * 3,
        ["lexapro was taken for depression", "It treats major depression.", "Anxiety."],
    )
    assert scores == {"exact_match": 1 / 3, "contains_answer": 2 / 3}
    train_q = ["What condition was A taken for?"] * 3 + ["What condition was B taken for?"]
    train_a = ["A was taken for Pain.", "A was taken for Acne.", "A was taken for Pain.", "B was taken for Acne."]
    asked = ["what condition was a taken for", "What condition was C taken for?"]
    assert lookup_answers(train_q, train_a, asked) == ["A was taken for Pain.", "A was taken for Pain."]


def test_the_card_scores_ours_the_base_model_and_the_lookup_on_the_validation_questions(
    uninterrupted: tuple[Path, object],
) -> None:
    metrics = uninterrupted[1].metrics  # type: ignore[attr-defined]
    assert 0 <= metrics["exact_match"] <= metrics["contains_answer"] <= 1
    assert set(metrics["baselines"]) == {"base_model", "lookup"}
    assert metrics["n_answered"] == len(records()) // 5
    assert all(s["generated"].strip() for s in metrics["samples"])  # the visible first token: never empty


def test_generation_never_starts_with_an_invisible_token(uninterrupted: tuple[Path, object]) -> None:
    from models_factory.trainers.generative import FirstTokenVisible, invisible_token_ids

    tokenizer = artifact_tokenizer(uninterrupted[0])
    banned = invisible_token_ids(tokenizer)
    assert tokenizer.eos_token_id in banned and tokenizer.pad_token_id in banned
    scores = torch.zeros(2, len(tokenizer))
    first = FirstTokenVisible(tokenizer, prompt_length=5)(torch.zeros(2, 5, dtype=torch.long), scores)
    assert torch.isinf(first[:, banned]).all() and torch.isfinite(first).sum() == 2 * (len(tokenizer) - len(banned))
    later = FirstTokenVisible(tokenizer, prompt_length=5)(torch.zeros(2, 6, dtype=torch.long), scores)
    assert torch.isfinite(later).all()  # only the first token is constrained; the model may stop after it
