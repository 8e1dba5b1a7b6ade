from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.models import CreditAccount
from core.errors import UserError
from datanets.models import Snapshot
from models_factory import hooks, services
from models_factory.artifacts import artifact_zip
from models_factory.models import MLModel
from models_factory.selectors import buildable_datanets, ml_models_visible, training_runs_visible, versions_visible
from models_factory.services.training import phase_message

HYPER_FIELDS = [
    ("epochs", int),
    ("batch_size", int),
    ("lr", float),
    ("max_length", int),
    ("seed", int),
    ("max_steps", int),
    ("lora_r", int),
]


def model_list(request: HttpRequest) -> HttpResponse:
    models = ml_models_visible(request.user).prefetch_related("versions")
    datanets = buildable_datanets(request.user, record_kinds=services.CLASSIFIER_KINDS | services.GENERATIVE_KINDS)
    return render(request, "models_factory/list.html", {"models": models, "datanets": datanets})


@login_required
@require_POST
def model_create(request: HttpRequest) -> HttpResponse:
    try:
        model = services.model_create(
            builder=request.user,
            datanet_slug=request.POST.get("datanet", ""),
            name=request.POST.get("name", ""),
            description=request.POST.get("description", ""),
        )
        return redirect(model)
    except UserError as exc:
        messages.error(request, exc.message)
        return redirect("models_factory:list")


def model_detail(request: HttpRequest, slug: str) -> HttpResponse:
    from models_factory.trainers.generative import lora_recipe  # torch loads on the first model page, not at start

    model = get_object_or_404(ml_models_visible(request.user), slug=slug)
    versions = list(model.versions.select_related("snapshot"))
    metric_keys = sorted(
        {
            k
            for v in versions
            for k, val in v.metrics.items()
            if isinstance(val, (int, float)) and not isinstance(val, bool)
        }
    )
    return render(
        request,
        "models_factory/model.html",
        {
            "model": model,
            "versions": versions,
            "metric_keys": metric_keys,
            "rows": [(v, [v.metrics.get(k) for k in metric_keys]) for v in versions],
            "runs": model.runs.select_related("job")[:20],
            "snapshots": Snapshot.objects.filter(datanet=model.datanet),
            "is_builder": request.user.is_authenticated and model.builder_id == request.user.pk,
            "is_classifier": model.kind == MLModel.Kind.CLASSIFIER,
            "recipe": lora_recipe("smollm2") if model.kind == MLModel.Kind.GENERATIVE else {},
        },
    )


@login_required
@require_POST
def run_create(request: HttpRequest, slug: str) -> HttpResponse:
    model = get_object_or_404(ml_models_visible(request.user), slug=slug)
    hyper = {}
    try:
        for name, cast in HYPER_FIELDS:
            raw = request.POST.get(name, "").strip()
            if raw:
                hyper[name] = cast(raw)
    except ValueError:
        messages.error(request, "Hyperparameters must be numbers.")
        return redirect(model)
    snapshot = Snapshot.objects.filter(pk=request.POST.get("snapshot") or 0, datanet=model.datanet).first()
    if snapshot is None:
        messages.error(request, "Pick a published snapshot of the model's Datanet.")
        return redirect(model)
    try:
        run = services.training_run_create(
            actor=request.user,
            ml_model=model,
            snapshot=snapshot,
            base_model=request.POST.get("base_model", ""),
            method=request.POST.get("method", ""),
            hyperparameters=hyper,
        )
    except UserError as exc:
        messages.error(request, exc.message)
        return redirect(model)
    return redirect(run)


# Versions registered before training figures moved to metrics["training"] held them among the validation metrics.
TRAINING_FIGURES_BEFORE_0004 = {"train_examples_per_s", "n_train_examples", "n_dropped_too_long"}


def run_detail(request: HttpRequest, pk: str) -> HttpResponse:
    run = get_object_or_404(training_runs_visible(request.user), pk=pk)
    # Before the first step (loading, tokenizing, embedding) the page shows that phase's counts, not "0 / 0".
    phase = phase_message(run.phase) if run.phase.get("name") and run.job.is_active else ""
    return render(
        request,
        "models_factory/run.html",
        {"run": run, "job": run.job, "version": getattr(run, "model_version", None), "phase": phase},
    )


@login_required
@require_POST
def run_cancel(request: HttpRequest, pk: str) -> HttpResponse:
    run = get_object_or_404(training_runs_visible(request.user), pk=pk)
    try:
        services.training_run_cancel(actor=request.user, run=run)
        messages.success(request, "Cancelling: the run stops at its next step and registers nothing.")
    except UserError as exc:
        messages.error(request, exc.message)
    return redirect(run)


def version_detail(request: HttpRequest, slug: str, version: int) -> HttpResponse:
    v = get_object_or_404(versions_visible(request.user).select_related("run"), ml_model__slug=slug, version=version)
    cm = v.metrics.get("confusion_matrix")
    labels = list(v.ml_model.datanet.labels)
    if isinstance(cm, dict):
        labels, cm = cm.get("labels", labels), cm.get("matrix")
    matrix = None
    if cm:
        top = max((max(row) for row in cm), default=1) or 1
        matrix = [(labels[i] if i < len(labels) else i, [(n, n / top) for n in row]) for i, row in enumerate(cm)]
    account = CreditAccount.objects.filter(user=request.user).first() if request.user.is_authenticated else None
    return render(
        request,
        "models_factory/version.html",
        {
            "v": v,
            "model": v.ml_model,
            "matrix": matrix,
            "matrix_labels": labels,
            "samples": v.metrics.get("samples", []),
            "is_builder": request.user.is_authenticated and v.ml_model.builder_id == request.user.pk,
            "balance": account.balance if account else 0,
            "panels": hooks.version_panels(request, v),
            "scalar_metrics": {
                k: val
                for k, val in v.metrics.items()
                if isinstance(val, (int, float)) and not isinstance(val, bool) and k not in TRAINING_FIGURES_BEFORE_0004
            },
            "training": v.metrics.get("training") or {},
            "baselines": _baseline_rows(v.metrics),
            "per_label": sorted((v.metrics.get("per_label") or {}).items()),
            "below_majority": services.below_majority_reason(v),
            "hyperparameters": {
                k: val
                for k, val in v.hyperparameters.items()
                if val is not None and (v.method == "lora" or not k.startswith("lora_"))
            },
        },
    )


def _baseline_rows(metrics: dict) -> list[dict]:
    """The card's comparison: the model first, then each baseline computed in the same run, with who wins."""
    baselines = metrics.get("baselines") or {}
    if not baselines:
        return []
    beats = metrics.get("beats_baselines") or {}
    rows = [
        {
            "name": "this model",
            "accuracy": metrics.get("accuracy"),
            "macro_f1": metrics.get("macro_f1"),
            "labels_predicted": metrics.get("labels_predicted"),
            "beaten": None,
        }
    ]
    for name, b in baselines.items():
        rows.append(
            {
                "name": b.get("title", name),
                "accuracy": b.get("accuracy"),
                "macro_f1": b.get("macro_f1"),
                "labels_predicted": b.get("labels_predicted"),
                "beaten": beats.get(name),
            }
        )
    return rows


@login_required
@require_POST
def version_deploy(request: HttpRequest, slug: str, version: int) -> HttpResponse:
    v = get_object_or_404(versions_visible(request.user), ml_model__slug=slug, version=version)
    deploying = request.POST.get("deployed") == "1"
    price = request.POST.get("price_credits", "").strip()
    if deploying and not price:  # never deploy at a price nobody chose
        messages.error(request, "Enter a price per call (a whole number of credits, 1 or more), then deploy.")
        return redirect(v)
    try:
        services.version_deploy(
            actor=request.user,
            version=v,
            deployed=deploying,
            price_credits=int(price) if price else None,
            confirm=request.POST.get("confirm") == "1",
        )
        messages.success(request, "Deployed." if deploying else "Undeployed.")
    except ValueError:
        messages.error(request, "The price must be a whole number of credits.")
    except UserError as exc:
        messages.error(request, exc.message)
    return redirect(v)


def version_download(request: HttpRequest, slug: str, version: int) -> FileResponse:
    v = get_object_or_404(versions_visible(request.user), ml_model__slug=slug, version=version)
    archive = artifact_zip(v.artifact_location)
    if archive is None:
        raise Http404("The artifact is not on this server.")
    return FileResponse(archive.open("rb"), as_attachment=True, filename=f"{slug}-v{version}.zip")
