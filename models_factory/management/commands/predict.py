"""``manage.py predict``: a builder's own evaluation of a version on JSONL inputs; no fee, no receipt."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import User
from models_factory import predictors
from models_factory.artifacts import artifact_local_path
from models_factory.management.commands.train import command_user
from models_factory.models import MLModel, ModelVersion
from models_factory.selectors import versions_visible
from models_factory.services import MAX_INPUT_CHARS
from models_factory.trainers import InputError, TrainerError

GENERATIVE_FIELDS = ("prompt", "question")
CLASSIFIER_BATCH = 32


def read_inputs(stream: TextIO, *, generative: bool) -> list[tuple[int, dict[str, Any]]]:
    """(line number, record) for each non-blank line, all checked before any runs: a bad line stops the command
    with its number and nothing is written."""
    fields = GENERATIVE_FIELDS if generative else ("text",)
    wanted = " or ".join(f'"{f}"' for f in fields)
    rows: list[tuple[int, dict[str, Any]]] = []
    for n, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CommandError(f"Line {n} is not valid JSON ({exc.msg} at column {exc.colno}).") from None
        if not isinstance(record, dict):
            raise CommandError(f"Line {n} is not a JSON object; write one object per line, like {{{wanted}: ...}}.")
        text = next((record[f] for f in fields if f in record), None)
        if not isinstance(text, str) or not text.strip():
            raise CommandError(f"Line {n} has no {wanted}: give each line a non-empty string under {wanted}.")
        if len(text) > MAX_INPUT_CHARS:
            raise CommandError(f"Line {n} is {len(text):,} characters; the limit is {MAX_INPUT_CHARS:,}.")
        rows.append((n, {**record, "_input": text}))
    return rows


class Command(BaseCommand):
    help = (
        "Run a model version on JSONL records from a file or stdin and write one JSON object per input line, in "
        "order. A builder's own evaluation: no fee, no receipt."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # Django's own --version (print Django's) gives way to the model version this command is about.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--version", dest="version_id", type=int, required=True, metavar="ID")
        parser.add_argument("--input", default="-", metavar="FILE.jsonl", help="default: stdin")
        parser.add_argument("--user", default="", metavar="USERNAME", help="act as this user (default: the builder)")
        parser.add_argument("--max-tokens", type=int, default=64, help="generative: new tokens per answer")
        parser.add_argument("--json", action="store_true", help="accepted for symmetry with train; output is JSONL")

    def handle(self, *args: Any, **options: Any) -> None:
        version_id = options["version_id"]
        version = ModelVersion.objects.select_related("ml_model__builder").filter(pk=version_id).first()
        user = command_user(options["user"], version.ml_model.builder if version else User())
        # A version the user could not see in the UI answers like one that does not exist.
        if version is None or not versions_visible(user).filter(pk=version_id).exists():
            raise CommandError(f"There is no model version #{version_id}.")
        generative = version.ml_model.kind == MLModel.Kind.GENERATIVE
        if options["input"] == "-":
            rows = read_inputs(sys.stdin, generative=generative)
        else:
            path = Path(options["input"])
            if not path.is_file():
                raise CommandError(f"There is no file {path}.")
            with path.open(encoding="utf-8") as handle:
                rows = read_inputs(handle, generative=generative)
        try:
            outputs = (
                self._generate(version, rows, options["max_tokens"]) if generative else self._classify(version, rows)
            )
        except InputError as exc:
            raise CommandError(str(exc)) from None
        except TrainerError as exc:
            raise CommandError(f"The model could not be loaded: {exc}") from None
        for output in outputs:
            self.stdout.write(json.dumps(output, sort_keys=True, ensure_ascii=False))

    def _classify(self, version: ModelVersion, rows: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
        predictor = predictors.classifier_predictor(version)
        out: list[dict[str, Any]] = []
        for start in range(0, len(rows), CLASSIFIER_BATCH):
            chunk = rows[start : start + CLASSIFIER_BATCH]
            try:
                predictions = predictor.predict([r["_input"] for _, r in chunk])
            except InputError:
                predictions = []
                for n, r in chunk:  # find the line the model refused, and say which
                    try:
                        predictions.extend(predictor.predict([r["_input"]]))
                    except InputError as exc:
                        raise InputError(f"Line {n}: {str(exc).removeprefix('input 0 ')}.") from None
            out.extend({"label": label, "probabilities": probs} for label, probs in predictions)
        return out

    def _generate(
        self, version: ModelVersion, rows: list[tuple[int, dict[str, Any]]], max_tokens: int
    ) -> list[dict[str, Any]]:
        server = predictors.generative_server()
        adapter = str(artifact_local_path(version.artifact_location))
        out: list[dict[str, Any]] = []
        for n, record in rows:
            try:
                text, _, _ = server.generate(adapter, record["_input"], max_new_tokens=max_tokens, temperature=0.0)
            except InputError as exc:
                raise InputError(f"Line {n}: {exc}.") from None
            out.append({"text": text})
        return out
