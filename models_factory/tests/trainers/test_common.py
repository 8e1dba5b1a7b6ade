from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models_factory.trainers.common import TrainConfig, atomic_output_dir
from models_factory.trainers.device import choose_device, configure_threads
from models_factory.trainers.errors import ConfigError
from models_factory.trainers.loop import load_latest_checkpoint, save_checkpoint


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("lr", 0.0, "lr must be in (0.0, 1.0]"),
        ("lr", 2.0, "lr must be in (0.0, 1.0]"),
        ("epochs", 0, "epochs must be between 1 and 100"),
        ("epochs", 101, "epochs must be between 1 and 100"),
        ("batch_size", 0, "batch_size must be between 1 and 4096"),
        ("batch_size", 5000, "batch_size must be between 1 and 4096"),
        ("max_length", 2, "max_length must be between 8 and 8192"),
        ("lora_dropout", 0.95, "lora_dropout must be in [0.0, 0.9]"),
        ("lora_r", 0, "lora_r must be between 1 and 256"),
        ("max_steps", 0, "max_steps must be between 1"),
        ("epochs", "3", "epochs must be a whole number"),
        ("method", "magic", "method must be one of"),
    ],
)
def test_out_of_range_hyperparameters_are_refused_with_the_field_named(field: str, value: object, message: str) -> None:
    config = TrainConfig(**{field: value})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[").replace("]", r"\]")):
        config.validate()


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig(epochs=0, batch_size=0).validate()
    assert "epochs" in str(info.value) and "batch_size" in str(info.value)


def test_unknown_hyperparameter_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown hyperparameters: learning_rate"):
        TrainConfig.from_dict({"learning_rate": 0.1})


def test_config_round_trips_with_the_resolved_learning_rate() -> None:
    config = TrainConfig(method="lora", epochs=2)
    data = config.to_dict()
    assert data["lr"] == pytest.approx(1e-3)
    assert TrainConfig.from_dict(data).validate().learning_rate == data["lr"]


def test_threads_default_to_one_on_cpu_and_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TORCH_NUM_THREADS", raising=False)
    assert configure_threads(choose_device("cpu")) == 1
    monkeypatch.setenv("TORCH_NUM_THREADS", "2")
    assert configure_threads(choose_device("cpu")) == 2
    monkeypatch.setenv("TORCH_NUM_THREADS", "lots")
    with pytest.raises(ConfigError, match="TORCH_NUM_THREADS must be a whole number"):
        configure_threads()
    torch.set_num_threads(1)


def test_cpu_device_is_fp32() -> None:
    choice = choose_device("cpu")
    assert choice.device.type == "cpu" and choice.precision == "fp32"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_cuda_without_a_gpu_says_so() -> None:
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        choose_device("cuda")


def test_failed_block_leaves_no_artifact(tmp_path: Path) -> None:
    target = tmp_path / "artifact"
    with pytest.raises(RuntimeError), atomic_output_dir(target) as scratch:
        (scratch / "half.bin").write_bytes(b"x")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_finished_block_replaces_an_older_artifact(tmp_path: Path) -> None:
    target = tmp_path / "artifact"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_output_dir(target) as scratch:
        (scratch / "new.txt").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["artifact"]
    assert [p.name for p in target.iterdir()] == ["new.txt"]


def test_checkpoint_of_another_run_is_not_resumed(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, {"format": 1, "fingerprint": "run-a", "step": 3, "trainable": {}})
    assert load_latest_checkpoint(tmp_path, "run-b") is None
    assert load_latest_checkpoint(tmp_path, "run-a")["step"] == 3  # type: ignore[index]
    assert not list(tmp_path.glob(".*tmp"))
