"""``manage.py train``: train a Datanet's default recipe in this process and register the version as the UI does."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import User
from core.errors import UserError
from core.models import Job
from datanets.models import Datanet, Snapshot
from models_factory import services
from models_factory.models import MLModel, ModelVersion
from models_factory.selectors import can_build_on
from models_factory.services.training import phase_message


def parse_set(pairs: list[str]) -> dict[str, Any]:
    """``--set key=value`` pairs as hyperparameters; a value is read as JSON (``3``, ``1e-3``, ``null``) when it
    parses, else kept as text, so the trainer's own validation names a wrong type."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"--set takes key=value (for example --set epochs=3), not {pair!r}.")
        try:
            values[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            values[key.strip()] = raw
    return values


def command_user(username: str | None, default: User) -> User:
    if not username:
        return default
    user = User.objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"There is no user '{username}'.")
    return user


class TerminalProgress:
    """A one-line bar on stderr with counts and time left; silent unless stderr is a terminal."""

    WIDTH = 30

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self._last = 0.0

    def _draw(self, done: int, total: int, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < 0.2):
            return
        self._last = now
        filled = round(self.WIDTH * done / total) if total else 0
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(f"\r[{bar}] {text}"[:200].ljust(100))
        self.stream.flush()

    def on_phase(self, phase: str, done: int, total: int, unit: str, rate: float, eta_s: float | None) -> None:
        state = {"name": phase, "done": done, "total": total, "unit": unit, "rate": rate, "eta_s": eta_s}
        self._draw(done, total, phase_message(state), force=done >= total)

    def on_progress(
        self, step: int, total_steps: int, epoch: float, loss: float, examples_per_s: float, eta_s: float | None
    ) -> None:
        left = f" · {round(eta_s):,} s left" if eta_s is not None else ""
        text = (
            f"step {step:,} / {total_steps:,} · epoch {epoch:.2f} · loss {loss:.4f} · {examples_per_s:.1f} ex/s{left}"
        )
        self._draw(step, total_steps, text, force=step >= total_steps)

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


class Command(BaseCommand):
    help = (
        "Train a Datanet's default recipe on its latest snapshot in this process (no worker) and register the "
        "version exactly as the web UI does."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--datanet", required=True, metavar="SLUG")
        parser.add_argument("--snapshot", type=int, metavar="N", help="snapshot version (default: the latest)")
        parser.add_argument("--base", default="", metavar="NAME_OR_PATH", help="base model (default: the recipe's)")
        parser.add_argument("--method", default="", help="head or full (classifiers), lora (generative)")
        parser.add_argument(
            "--set", dest="hyperparameters", action="append", default=[], metavar="KEY=VALUE", help="a hyperparameter"
        )
        parser.add_argument("--model", default="", metavar="SLUG", help="model to add a version to (default: yours)")
        parser.add_argument("--user", default="", metavar="USERNAME", help="act as this user (default: the owner)")
        parser.add_argument("--json", action="store_true", help="end with one JSON line: version, metrics, baselines")

    def handle(self, *args: Any, **options: Any) -> None:
        slug = options["datanet"]
        datanet = Datanet.objects.select_related("owner").filter(slug=slug).first()
        # A Datanet the user may not see answers like one that does not exist, as in the UI.
        user = command_user(options["user"], datanet.owner if datanet else User())
        if datanet is None or not can_build_on(user, datanet):
            raise CommandError(f"There is no Datanet '{slug}'.")
        snapshots = Snapshot.objects.filter(datanet=datanet)
        if options["snapshot"] is not None:
            snapshot = snapshots.filter(version=options["snapshot"]).first()
            if snapshot is None:
                raise CommandError(f"'{slug}' has no snapshot version {options['snapshot']}.")
        else:
            snapshot = snapshots.order_by("-version").first()
            if snapshot is None:
                raise CommandError(f"'{slug}' has no snapshot yet; publish one from its page, then train on it.")
        hyperparameters = parse_set(options["hyperparameters"])
        try:
            ml_model = self._model(user, datanet, options["model"])
            run = services.training_run_create(
                actor=user,
                ml_model=ml_model,
                snapshot=snapshot,
                base_model=options["base"],
                method=options["method"],
                hyperparameters=hyperparameters,
                enqueue=False,
            )
        except UserError as exc:
            raise CommandError(exc.message) from None
        if not options["json"]:
            self.stdout.write(f"Training {ml_model.slug} on {snapshot} ({run.method}, base {run.base_model_name})")
        progress = TerminalProgress(sys.stderr)
        try:
            services.training_run_execute(job_id=str(run.job_id), progress=progress)
        finally:
            progress.close()
        job = Job.objects.get(pk=run.job_id)
        if job.status != Job.Status.SUCCEEDED:
            raise CommandError(f"{job.message}: {job.error}" if job.error else job.message)
        version = ModelVersion.objects.get(run=run)
        metrics = {k: v for k, v in version.metrics.items() if k != "baselines"}
        if options["json"]:
            body = {"version_id": version.pk, "metrics": metrics, "baselines": version.metrics.get("baselines", {})}
            self.stdout.write(json.dumps(body, sort_keys=True, ensure_ascii=False, default=str))
            return
        figures = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, float))
        self.stdout.write(self.style.SUCCESS(f"Registered {version} (id {version.pk}): {figures}"))

    def _model(self, user: User, datanet: Datanet, slug: str) -> MLModel:
        """The named model, else the user's newest model on this Datanet, else a new one named after it."""
        if slug:
            model = MLModel.objects.filter(slug=slug, datanet=datanet).first()
            if model is None:
                raise CommandError(f"'{datanet.slug}' has no model '{slug}'.")
            return model
        mine = MLModel.objects.filter(datanet=datanet, builder=user).order_by("-created_at").first()
        return mine or services.model_create(builder=user, datanet_slug=datanet.slug, name=datanet.title)
