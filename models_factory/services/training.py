"""Models and training runs: create a model on a visible Datanet, queue, run, cancel and register training runs.

Apps to the right (attribution) act on a registered version through ``hooks``."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.text import slugify

from accounts.audit import audit_record
from accounts.models import User
from core.errors import Conflict, Forbidden, NotFound, UserError
from core.events import event_emit
from core.jobs import JobProgress, job_create, job_enqueue, job_fail, job_run, job_succeed
from core.models import Job
from datanets.models import Datanet, Snapshot, SnapshotRecord
from models_factory import artifacts, hooks
from models_factory.artifacts import artifact_publish
from models_factory.models import MLModel, ModelVersion, TrainingRun
from models_factory.selectors import can_build_on

log = logging.getLogger(__name__)

CLASSIFIER_KINDS = {"labeled_text"}
GENERATIVE_KINDS = {"instruction", "qa"}
CLASSIFIER_BASES = {"minilm"}
GENERATIVE_BASES = {"smollm2", "tiny"}


def code_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip()[:40] if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def sentence(message: str) -> str:
    """Trainer messages start lower-case (they name fields); end them as a sentence."""
    return message if message.endswith(".") else message + "."


def models_dir() -> Path:
    path = Path(settings.VAR_DIR) / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def checkpoints_dir(run: TrainingRun) -> Path:
    return Path(settings.VAR_DIR) / "checkpoints" / str(run.id)


def base_model_dir_allowed(spec: str) -> bool:
    """Whether a base model given as a path is an existing folder or file under one of ``MODEL_BASE_DIRS``: a
    builder names a registered model, never an arbitrary path on the server."""
    if not spec or "\x00" in spec:
        return False
    try:
        path = Path(spec).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return False
    for root in settings.MODEL_BASE_DIRS:
        try:
            base = Path(root).resolve()
        except (OSError, RuntimeError):
            continue
        if path != base and path.is_relative_to(base):
            return True
    return False


# --- Training runs --------------------------------------------------------------------------------------------


def model_create(*, builder: User, datanet_slug: str, name: str, description: str = "") -> MLModel:
    """A model on a Datanet the builder can see. A private Datanet the builder is not a member of answers exactly
    like a Datanet that does not exist, so the answer tells nothing about it."""
    if not builder.is_authenticated:
        raise Forbidden("Log in to build models.")
    datanet = Datanet.objects.filter(slug=datanet_slug).first()
    if datanet is None or not can_build_on(builder, datanet):
        raise NotFound(f"There is no Datanet '{datanet_slug}'.")
    if datanet.record_kind in CLASSIFIER_KINDS:
        kind = MLModel.Kind.CLASSIFIER
    elif datanet.record_kind in GENERATIVE_KINDS:
        kind = MLModel.Kind.GENERATIVE
    else:
        raise UserError(
            f"Models train on labeled text (classifiers) or instruction / question-answer records (generative); "
            f"'{datanet.title}' holds {datanet.get_record_kind_display()} records."
        )
    base = slugify(name)[:70] or "model"
    slug, n = base, 1
    while MLModel.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    model = MLModel.objects.create(
        name=name.strip() or slug, slug=slug, kind=kind, datanet=datanet, builder=builder, description=description
    )
    audit_record(actor=builder, action="model.create", target=model, after={"slug": slug, "kind": kind})
    return model


def training_run_create(
    *,
    actor: User,
    ml_model: MLModel,
    snapshot: Snapshot,
    base_model: str = "",
    method: str = "",
    hyperparameters: dict[str, Any] | None = None,
    enqueue: bool = True,
) -> TrainingRun:
    """A queued run of a model on one of its Datanet's snapshots. ``enqueue=False`` leaves the job for the caller
    to run in its own process (``training_run_execute``), as ``manage.py train`` does."""
    from models_factory.trainers import ConfigError, TrainConfig
    from models_factory.trainers.common import CLASSIFIER_METHODS, CLASSIFIER_RECIPE
    from models_factory.trainers.generative import lora_recipe

    if not can_build_on(actor, snapshot.datanet) or not can_build_on(actor, ml_model.datanet):
        raise NotFound("There is no such model or snapshot.")
    if ml_model.builder_id != actor.pk and not actor.is_superuser:
        raise Forbidden("Only the model's builder can train new versions of it.")
    if snapshot.datanet_id != ml_model.datanet_id:
        raise UserError("The snapshot must come from the model's Datanet.")
    is_classifier = ml_model.kind == MLModel.Kind.CLASSIFIER
    base_model = (base_model or ("minilm" if is_classifier else "smollm2")).strip()
    method = method or (CLASSIFIER_RECIPE["method"] if is_classifier else "lora")
    allowed = CLASSIFIER_METHODS if is_classifier else ("lora",)
    if is_classifier and method == CLASSIFIER_RECIPE["method"]:
        # The default recipe's settings, under whatever the builder set explicitly.
        hyperparameters = {**{k: v for k, v in CLASSIFIER_RECIPE.items() if k != "method"}, **(hyperparameters or {})}
    if method not in allowed:
        raise UserError(
            f"A {ml_model.get_kind_display().lower()} trains with method {' or '.join([', '.join(allowed[:-1]), allowed[-1]] if len(allowed) > 1 else allowed)}."
        )
    if base_model not in CLASSIFIER_BASES | GENERATIVE_BASES and not base_model_dir_allowed(base_model):
        raise UserError(
            f"The base model '{base_model}' is neither a packaged model "
            f"({', '.join(sorted(CLASSIFIER_BASES if is_classifier else GENERATIVE_BASES))}) nor a model folder "
            "under a folder this server registers for base models (MODEL_BASE_DIRS). Name a packaged model, or ask "
            "the operator to put the model under one of those folders."
        )
    # A generative run starts from the measured LoRA recipe of its base; what the builder sets wins.
    recipe = {} if is_classifier else lora_recipe(base_model)
    try:
        config = TrainConfig.from_dict({**recipe, **(hyperparameters or {}), "method": method}).validate()
    except ConfigError as exc:
        raise UserError(sentence(str(exc))) from None
    if snapshot.record_count < 4:
        raise UserError(f"Version {snapshot.version} has {snapshot.record_count} records; training needs at least 4.")
    if is_classifier and len(snapshot.card.get("labels", {})) < 2:
        raise UserError("The snapshot has a single label; a classifier needs records of at least two labels.")
    with transaction.atomic():
        job = job_create(kind="train", user=actor, message="Waiting for a training worker")
        run = TrainingRun.objects.create(
            ml_model=ml_model,
            snapshot=snapshot,
            base_model=base_model,
            method=method,
            hyperparameters=config.to_dict(),
            job=job,
            created_by=actor,
        )
        job.target_id = str(run.pk)
        job.save(update_fields=["target_id"])
        audit_record(actor=actor, action="training.start", target=run, after={"config": config.to_dict()})
        if enqueue:
            job_enqueue(job)
    return run


def phase_message(phase: dict[str, Any]) -> str:
    """'embedding 128 / 560 texts · 41.0/s · 11 s left': one line for the job, the run page and the CLI."""
    parts = [f"{phase['name']} {phase['done']:,} / {phase['total']:,} {phase['unit']}"]
    if phase.get("rate"):
        parts.append(f"{phase['rate']:.1f}/s")
    if phase.get("eta_s") is not None:
        parts.append(f"{round(phase['eta_s']):,} s left")
    return " · ".join(parts)


class _JobCallbacks:
    """Writes trainer progress to the run and its job; reads cancellation from the job row. ``forward`` is another
    callbacks object that sees every report too (the command line's progress bar)."""

    def __init__(self, run: TrainingRun, job: Job, forward: Any = None) -> None:
        self.run = run
        self.forward = forward
        self.progress = JobProgress(job, total=0, unit="steps", interval=1.0)
        self._last_cancel_check = 0.0
        self._cancelled = False
        self._loss: list[list[float]] = list(run.loss_history or [])
        self._evals: list[list[float]] = list(run.eval_history or [])
        self._last_flush = 0.0
        self._last_phase_flush = 0.0
        self.on_phase("loading data and the base model", 0, 0, "steps", 0.0, None)

    def _forward(self, name: str, *args: Any) -> None:
        fn = getattr(self.forward, name, None)
        if fn is not None:
            fn(*args)

    def on_phase(self, phase: str, done: int, total: int, unit: str, rate: float, eta_s: float | None) -> None:
        self._forward("on_phase", phase, done, total, unit, rate, eta_s)
        now = time.monotonic()
        if now - self._last_phase_flush < 1.0 and 0 < done < total:
            return
        self._last_phase_flush = now
        state = {"name": phase, "done": done, "total": total, "unit": unit, "rate": round(rate, 3), "eta_s": eta_s}
        TrainingRun.objects.filter(pk=self.run.pk).update(phase=state, eta_s=eta_s)
        self.progress.update(done, total=total, message=phase_message(state), force=True)

    def on_progress(
        self, step: int, total_steps: int, epoch: float, loss: float, examples_per_s: float, eta_s: float | None
    ) -> None:
        self._forward("on_progress", step, total_steps, epoch, loss, examples_per_s, eta_s)
        self._loss.append([step, round(float(loss), 6)])
        now = time.monotonic()
        if now - self._last_flush < 1.0 and step < total_steps:
            return
        self._last_flush = now
        TrainingRun.objects.filter(pk=self.run.pk).update(
            step=step,
            total_steps=total_steps,
            epoch=epoch,
            examples_per_s=examples_per_s,
            eta_s=eta_s,
            loss_history=self._loss[-2000:],
            phase={},
        )
        self.progress.update(
            step,
            total=total_steps,
            message=f"step {step}/{total_steps}, epoch {epoch:.2f}, loss {loss:.4f}",
            force=True,
        )

    def on_eval(self, step: int, metrics: dict[str, Any]) -> None:
        self._forward("on_eval", step, metrics)
        if metrics.get("val_loss") is not None:
            self._evals.append([step, round(float(metrics["val_loss"]), 6)])
            TrainingRun.objects.filter(pk=self.run.pk).update(eval_history=self._evals[-500:])

    def should_cancel(self) -> bool:
        now = time.monotonic()
        if now - self._last_cancel_check > 1.0:
            self._last_cancel_check = now
            self._cancelled = self.progress.cancelled()
        return self._cancelled

    def on_checkpoint(self, path: Path) -> None:
        Job.objects.filter(pk=self.progress.job.pk).update(heartbeat_at=timezone.now())


def _snapshot_rows(snapshot: Snapshot) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    train: list[dict[str, Any]] = []
    val: list[dict[str, Any]] = []
    rows = (
        SnapshotRecord.objects.filter(snapshot=snapshot)
        .order_by("position")
        .values_list("record__data", "split")
        .iterator(chunk_size=5000)
    )
    for data, split in rows:
        (val if split == SnapshotRecord.Split.VALIDATION else train).append(data)
    return train, val


def training_run_execute(*, job_id: str, progress: Any = None) -> None:
    """Run a queued training job in this process (the worker's task, or ``manage.py train``) and register its
    version. ``progress``: a callbacks object that also sees every report, for a terminal progress bar."""
    finished = [Job.Status.SUCCEEDED, Job.Status.FAILED, Job.Status.CANCELLED]
    if Job.objects.filter(pk=job_id, status__in=finished).exists():  # a redelivered task: announced already
        job_run(job_id, lambda job: _train(job, progress))
        return
    try:
        job_run(job_id, lambda job: _train(job, progress))
    finally:
        _run_finished_emit(job_id)


def _run_finished_emit(job_id: str) -> None:
    run = (
        TrainingRun.objects.select_related("job", "ml_model", "snapshot")
        .filter(job_id=job_id, job__status__in=[Job.Status.SUCCEEDED, Job.Status.FAILED, Job.Status.CANCELLED])
        .first()
    )
    if run is None:  # still running elsewhere, or retried later
        return
    version = ModelVersion.objects.filter(run=run).values_list("pk", "version").first()
    event_emit(
        "run.finished",
        datanet_id=run.snapshot.datanet_id,
        user_ids=[run.created_by_id],
        data={
            "run": str(run.pk),
            "model": run.ml_model.slug,
            "status": run.job.status,
            "version_id": version[0] if version else None,
            "version": version[1] if version else None,
            "snapshot_root": run.snapshot.root,
        },
    )


def _train(job: Job, progress: Any = None) -> None:
    from models_factory.trainers import (
        Cancelled,
        ClassifierTrainer,
        LoRATrainer,
        TrainConfig,
        TrainerError,
    )

    run = TrainingRun.objects.select_related("ml_model", "snapshot__datanet").get(pk=job.target_id)
    if hasattr(run, "model_version"):
        job_succeed(job=job, result={"version": run.model_version.version}, message="Already registered")
        return
    train, val = _snapshot_rows(run.snapshot)
    config = TrainConfig.from_dict(run.hyperparameters)
    output = models_dir() / str(run.id)
    callbacks = _JobCallbacks(run, job, progress)
    try:
        if run.ml_model.kind == MLModel.Kind.CLASSIFIER:
            result = ClassifierTrainer(run.base_model).train(
                texts=[r["text"] for r in train],
                labels=[r["label"] for r in train],
                config=config,
                output_dir=output,
                label_set=list(run.snapshot.datanet.labels) or None,
                val_texts=[r["text"] for r in val] or None,
                val_labels=[r["label"] for r in val] or None,
                checkpoint_dir=checkpoints_dir(run),
                callbacks=callbacks,
            )
        else:
            result = LoRATrainer(run.base_model).train(
                records=train,
                val_records=val or None,
                config=config,
                output_dir=output,
                checkpoint_dir=checkpoints_dir(run),
                callbacks=callbacks,
            )
    except Cancelled:
        Job.objects.filter(pk=job.pk).update(
            status=Job.Status.CANCELLED, message="Cancelled; nothing was registered", finished_at=timezone.now()
        )
        shutil.rmtree(checkpoints_dir(run), ignore_errors=True)
        return
    except TrainerError as exc:
        job_fail(job=job, error=str(exc), message="Training failed; nothing was registered")
        return
    except MemoryError:
        job_fail(job=job, error="ran out of memory; lower batch_size or max_length", message="Out of memory")
        return
    version = _register(run, result)
    job_succeed(
        job=job,
        result={
            "version": version.version,
            "metrics": _summary(version.metrics),
            "resumed_from_step": result.resumed_from_step,
        },
        message=f"Registered version {version.version}",
    )


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}


def _register(run: TrainingRun, result: Any) -> ModelVersion:
    with transaction.atomic():
        model = MLModel.objects.select_for_update().get(pk=run.ml_model_id)
        last = ModelVersion.objects.filter(ml_model=model).aggregate(m=Max("version"))["m"] or 0
        version = ModelVersion.objects.create(
            ml_model=model,
            version=last + 1,
            run=run,
            snapshot=run.snapshot,
            snapshot_root=run.snapshot.root,
            base_model_id=result.base_model_id,
            base_model_sha256=result.base_model_sha256,
            method=result.method,
            hyperparameters=result.config,
            seeds=result.seeds,
            library_versions=result.library_versions,
            code_revision=code_revision(),
            device=f"{result.device} {result.precision}",
            metrics=result.metrics,
            artifact_location=artifact_publish(Path(result.artifact_dir), name=str(run.id)),
            artifact_size_bytes=result.artifact_size_bytes,
        )
        evals = [[s, v] for s, v in result.metrics.get("eval_history", [])]
        val_loss = result.metrics.get("val_loss")
        if val_loss is not None and (not evals or evals[-1][0] != result.steps):
            evals.append([result.steps, val_loss])  # the final evaluation, the one the card reports
        TrainingRun.objects.filter(pk=run.pk).update(
            loss_history=[[s, v] for s, v in result.loss_history][-2000:], eval_history=evals[-500:], phase={}
        )
        audit_record(
            actor=run.created_by,
            action="model.register",
            target=version,
            after={"version": version.version, "snapshot_root": version.snapshot_root},
        )
        hooks.version_registered(version=version, actor=run.created_by)
    return version


def training_run_cancel(*, actor: User, run: TrainingRun) -> None:
    if run.created_by_id != actor.pk and not actor.is_superuser:
        raise Forbidden("Only the person who started this run can cancel it.")
    if not run.job.is_active:
        raise Conflict(f"This run already {run.job.status}.")
    Job.objects.filter(pk=run.job_id).update(cancel_requested=True)
    if run.job.status == Job.Status.QUEUED:
        Job.objects.filter(pk=run.job_id, status=Job.Status.QUEUED).update(
            status=Job.Status.CANCELLED, message="Cancelled before it started", finished_at=timezone.now()
        )


def model_zips_expire() -> int:
    """Drop pre-built download zips that no version points at, or that nobody downloaded for
    ``MODEL_ZIP_MAX_AGE_HOURS`` (run hourly by beat; a download rebuilds a missing zip)."""
    live = list(ModelVersion.objects.values_list("artifact_location", flat=True))
    return artifacts.artifact_zips_expire(live_locations=live, max_age_s=settings.MODEL_ZIP_MAX_AGE_HOURS * 3600)
