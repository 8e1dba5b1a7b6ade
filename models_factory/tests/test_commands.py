"""``manage.py train`` and ``manage.py predict``: what a builder at a terminal sees, errors included."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import AuditEvent, CreditAccount
from accounts.tests.factories import UserFactory
from datanets.tests.factories import DatanetFactory
from models_factory.management.commands.train import TerminalProgress
from models_factory.models import Inference, ModelVersion
from models_factory.tests.factories import qa_records, sentiment_records, snapshot_with

pytestmark = pytest.mark.django_db

FAST = ["--set", "epochs=1", "--set", "max_length=32", "--set", "batch_size=8"]


def run(name: str, *args: str, stdin: str | None = None, monkeypatch: pytest.MonkeyPatch | None = None) -> list[str]:
    out = io.StringIO()
    if stdin is not None:
        assert monkeypatch is not None
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    call_command(name, *args, stdout=out)
    return out.getvalue().strip().splitlines()


def last_json(lines: list[str]) -> dict:
    return json.loads(lines[-1])


def test_train_registers_a_version_as_the_ui_does_and_predict_reads_jsonl(tmp_path: Path) -> None:
    datanet, snapshot = snapshot_with(sentiment_records(), labels=["negative", "positive"])
    body = last_json(run("train", "--datanet", datanet.slug, *FAST, "--json"))
    assert set(body) == {"version_id", "metrics", "baselines"}
    version = ModelVersion.objects.get(pk=body["version_id"])
    assert version.snapshot == snapshot and version.run.created_by == datanet.owner
    assert version.method == "finetune" and version.hyperparameters["epochs"] == 1
    assert body["metrics"]["accuracy"] == version.metrics["accuracy"]
    assert set(body["baselines"]) == {"majority", "tfidf_lr", "frozen_encoder_lr"}
    assert AuditEvent.objects.filter(action="model.register", target_id=str(version.pk)).exists()
    assert version.run.job.status == "succeeded"

    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"text": "works great, very happy"}\n\n{"text": "terrible headaches"}\n', encoding="utf-8")
    lines = run("predict", "--version", str(version.pk), "--input", str(inputs), "--json")
    assert len(lines) == 2
    for line in lines:
        answer = json.loads(line)
        assert answer["label"] in {"negative", "positive"}
        assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert not Inference.objects.exists() and not CreditAccount.objects.filter(balance__lt=0).exists()

    # A second train adds version 2 to the same model.
    again = last_json(run("train", "--datanet", datanet.slug, *FAST, "--json"))
    assert ModelVersion.objects.get(pk=again["version_id"]).version == 2


def test_generative_train_and_predict_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    datanet, _ = snapshot_with(qa_records(), record_kind="qa", labels=[])
    body = last_json(
        run("train", "--datanet", datanet.slug, "--base", "tiny", *FAST, "--set", "batch_size=4", "--json")
    )
    version = ModelVersion.objects.get(pk=body["version_id"])
    assert version.method == "lora" and "perplexity" in body["metrics"]
    stdin = '{"question": "What is the capital of region 3?"}\n{"prompt": "What is the capital of region 4?"}\n'
    lines = run("predict", "--version", str(version.pk), "--max-tokens", "4", stdin=stdin, monkeypatch=monkeypatch)
    assert [set(json.loads(line)) for line in lines] == [{"text"}, {"text"}]


def test_train_errors_are_sentences() -> None:
    with pytest.raises(CommandError, match="There is no Datanet 'nope'."):
        run("train", "--datanet", "nope")
    empty = DatanetFactory()
    with pytest.raises(CommandError, match=f"'{empty.slug}' has no snapshot yet; publish one"):
        run("train", "--datanet", empty.slug)
    datanet, _ = snapshot_with(sentiment_records(), labels=["negative", "positive"])
    with pytest.raises(CommandError, match="no snapshot version 7"):
        run("train", "--datanet", datanet.slug, "--snapshot", "7")
    with pytest.raises(CommandError, match="unknown hyperparameters: epoch; known ones are"):
        run("train", "--datanet", datanet.slug, "--set", "epoch=1")
    with pytest.raises(CommandError, match="epochs must be a whole number, not 'many'"):
        run("train", "--datanet", datanet.slug, "--set", "epochs=many")
    with pytest.raises(CommandError, match="--set takes key=value"):
        run("train", "--datanet", datanet.slug, "--set", "epochs")
    with pytest.raises(CommandError, match="trains with method finetune, head or full"):
        run("train", "--datanet", datanet.slug, "--method", "lora")
    # A private Datanet is invisible to a stranger, exactly like a missing one.
    private, _ = snapshot_with(sentiment_records(), labels=["negative", "positive"], is_public=False)
    stranger = UserFactory()
    with pytest.raises(CommandError, match=f"There is no Datanet '{private.slug}'."):
        run("train", "--datanet", private.slug, "--user", stranger.username)
    assert not ModelVersion.objects.exists()


def test_predict_errors_are_sentences(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="There is no model version #999."):
        run("predict", "--version", "999")
    private, _ = snapshot_with(sentiment_records(), labels=["negative", "positive"], is_public=False)
    version_id = last_json(run("train", "--datanet", private.slug, *FAST, "--json"))["version_id"]
    stranger = UserFactory()
    with pytest.raises(CommandError, match=f"There is no model version #{version_id}."):
        run("predict", "--version", str(version_id), "--user", stranger.username)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": "broken\n', encoding="utf-8")
    with pytest.raises(CommandError, match=r"Line 2 is not valid JSON"):
        run("predict", "--version", str(version_id), "--input", str(bad))
    bad.write_text('{"text": "fine"}\n\n{"prompt": "wrong field"}\n', encoding="utf-8")
    with pytest.raises(CommandError, match=r'Line 3 has no "text"'):
        run("predict", "--version", str(version_id), "--input", str(bad))
    bad.write_text("[1, 2]\n", encoding="utf-8")
    with pytest.raises(CommandError, match="Line 1 is not a JSON object"):
        run("predict", "--version", str(version_id), "--input", str(bad))
    with pytest.raises(CommandError, match="There is no file"):
        run("predict", "--version", str(version_id), "--input", str(tmp_path / "missing.jsonl"))


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_draws_counts_and_time_left_only_on_a_terminal() -> None:
    screen = FakeTerminal()
    bar = TerminalProgress(screen)
    bar.on_phase("embedding", 64, 128, "texts", 32.0, 2.0)
    bar.on_progress(10, 10, 1.0, 0.25, 50.0, 0.0)
    bar.close()
    text = screen.getvalue()
    assert "embedding 64 / 128 texts · 32.0/s · 2 s left" in text
    assert "step 10 / 10 · epoch 1.00 · loss 0.2500" in text and "#" * 30 in text
    piped = io.StringIO()
    silent = TerminalProgress(piped)
    silent.on_phase("embedding", 64, 128, "texts", 32.0, 2.0)
    silent.close()
    assert piped.getvalue() == ""
