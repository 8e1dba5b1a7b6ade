from __future__ import annotations

import json
from pathlib import Path

import pytest

from models_factory.serving.classifier import ClassifierPredictor
from models_factory.tests.trainers.conftest import Recorder, WorkerKilled, review_data
from models_factory.trainers.classifier import ClassifierTrainer
from models_factory.trainers.common import TrainConfig
from models_factory.trainers.errors import BaseModelError, DataError, InputError

HEAD = TrainConfig(method="head", epochs=5, batch_size=8, lr=0.05, max_length=32, seed=3, checkpoint_every=4)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    texts, labels = review_data()
    out = tmp_path_factory.mktemp("cls") / "artifact"
    result = ClassifierTrainer().train(texts=texts, labels=labels, config=HEAD, output_dir=out)
    return out, result


def test_head_training_reports_metrics_and_writes_standard_files(trained: tuple[Path, object]) -> None:
    out, result = trained
    metrics = result.metrics  # type: ignore[attr-defined]
    assert metrics["accuracy"] >= 0.75
    assert 0 <= metrics["macro_f1"] <= 1
    assert metrics["confusion_matrix"]["labels"] == ["negative", "positive"]
    assert sum(map(sum, metrics["confusion_matrix"]["matrix"])) == metrics["n_validation"] == 8
    assert {"head.safetensors", "config.json", "labels.json", "training_info.json"} <= {p.name for p in out.iterdir()}
    info = json.loads((out / "training_info.json").read_text())
    assert info["base_model_id"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert len(info["base_model_sha256"]) == 64 and info["seeds"] == {"seed": 3}
    assert "torch" in info["library_versions"] and result.loss_history[-1][0] == result.steps  # type: ignore[attr-defined]


def test_predictor_gives_labels_and_probabilities_batched_like_single(trained: tuple[Path, object]) -> None:
    predictor = ClassifierPredictor.load(trained[0])
    texts = ["This medicine was wonderful.", "The side effects were dreadful.", "ok"]
    batched = predictor.predict(texts, batch_size=8)
    single = [predictor.predict([t])[0] for t in texts]
    assert [b[0] for b in batched] == [s[0] for s in single]
    assert batched[0][0] == "positive" and batched[1][0] == "negative"
    for (_, probs), (_, probs_single) in zip(batched, single):
        assert sum(probs.values()) == pytest.approx(1.0)
        assert probs == pytest.approx(probs_single, abs=1e-5)


def test_predictor_refuses_empty_inputs_and_truncates_long_ones_as_training_did(trained: tuple[Path, object]) -> None:
    predictor = ClassifierPredictor.load(trained[0])
    with pytest.raises(InputError, match="input 1 is empty"):
        predictor.predict(["fine", "   "])
    with pytest.raises(InputError, match="no input"):
        predictor.predict([])
    long_text = "The side effects were dreadful. " + "word " * 600
    (answer,) = predictor.predict_detailed([long_text])
    assert answer["truncated"] and answer["tokens_kept"] == 32 and answer["tokens_in"] > 600
    # Exactly the cut training made: the first 31 tokens and the closing one.
    (cut,) = predictor.predict_detailed([predictor.tokenizer.decode(predictor.tokenizer(long_text)["input_ids"][1:31])])
    assert cut["probabilities"] == pytest.approx(answer["probabilities"], abs=1e-5)


def test_same_seed_gives_the_same_metrics(trained: tuple[Path, object], tmp_path: Path) -> None:
    texts, labels = review_data()
    again = ClassifierTrainer().train(texts=texts, labels=labels, config=HEAD, output_dir=tmp_path / "again")
    first = trained[1]
    assert again.loss_history == first.loss_history  # type: ignore[attr-defined]
    assert again.metrics["val_loss"] == first.metrics["val_loss"]  # type: ignore[attr-defined]


def test_head_run_killed_midway_resumes_to_the_same_result(trained: tuple[Path, object], tmp_path: Path) -> None:
    texts, labels = review_data()
    ckpt, out = tmp_path / "ckpt", tmp_path / "out"
    with pytest.raises(WorkerKilled):
        ClassifierTrainer().train(
            texts=texts,
            labels=labels,
            config=HEAD,
            output_dir=out,
            checkpoint_dir=ckpt,
            callbacks=Recorder(crash_at=10),
        )
    assert not out.exists() and list(ckpt.glob("step-*.pt"))
    resumed = ClassifierTrainer().train(texts=texts, labels=labels, config=HEAD, output_dir=out, checkpoint_dir=ckpt)
    assert resumed.resumed_from_step == 8
    assert resumed.loss_history == trained[1].loss_history  # type: ignore[attr-defined]
    assert resumed.metrics["val_loss"] == trained[1].metrics["val_loss"]  # type: ignore[attr-defined]
    assert not list(ckpt.glob("step-*.pt"))


def test_full_fine_tune_runs_and_saves_the_encoder(tmp_path: Path) -> None:
    texts, labels = review_data()
    config = TrainConfig(method="full", epochs=1, batch_size=8, max_length=16, max_steps=2)
    result = ClassifierTrainer().train(texts=texts, labels=labels, config=config, output_dir=tmp_path / "full")
    assert result.steps == 2 and (tmp_path / "full" / "encoder" / "config.json").is_file()
    assert ClassifierPredictor.load(tmp_path / "full").predict(["fine"])[0][0] in {"positive", "negative"}


def test_single_label_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="single label .*at least two labels"):
        ClassifierTrainer().train(texts=["a", "b", "c", "d", "e"], labels=["x"] * 5, config=HEAD, output_dir=tmp_path)


def test_too_few_records_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="at least 4 records; the snapshot has 3"):
        ClassifierTrainer().train(texts=["a", "b", "c"], labels=["x", "y", "x"], config=HEAD, output_dir=tmp_path)


def test_empty_text_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="record 2 has an empty text"):
        ClassifierTrainer().train(
            texts=["a", "b", " ", "d"], labels=["x", "y", "x", "y"], config=HEAD, output_dir=tmp_path / "o"
        )


def test_missing_encoder_path_is_refused(tmp_path: Path) -> None:
    texts, labels = review_data()
    with pytest.raises(BaseModelError, match="does not exist"):
        ClassifierTrainer(str(tmp_path / "nope")).train(
            texts=texts, labels=labels, config=HEAD, output_dir=tmp_path / "o"
        )
