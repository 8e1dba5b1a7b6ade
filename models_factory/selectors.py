"""Reads of the Model Factory, already filtered to what the viewer may see.

A model, its runs, versions and inferences are derived from one Datanet: whoever cannot see the Datanet cannot see
them either (a private Datanet's models, samples and artifacts stay with its owner and members)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from accounts.models import User
from core.models import Job
from datanets.models import Datanet
from datanets.selectors import can_view, datanet_ids_visible
from models_factory.models import MLModel, ModelVersion, TrainingRun


def can_build_on(user: User, datanet: Datanet) -> bool:
    """Who may create a model on a Datanet or train on its snapshots: anyone signed in who can see it (for a private
    Datanet: its owner, its members and superusers)."""
    return bool(user.is_authenticated) and can_view(user, datanet)


def ml_models_visible(user: User) -> QuerySet[MLModel]:
    return MLModel.objects.select_related("datanet", "builder").filter(datanet__in=datanet_ids_visible(user))


def training_runs_visible(user: User) -> QuerySet[TrainingRun]:
    return TrainingRun.objects.select_related("ml_model", "job", "snapshot").filter(
        ml_model__datanet__in=datanet_ids_visible(user)
    )


def versions_visible(user: User) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.select_related("ml_model__datanet", "snapshot__datanet").filter(
        ml_model__datanet__in=datanet_ids_visible(user)
    )


def buildable_datanets(user: User, *, record_kinds: Any) -> QuerySet[Datanet]:
    """The Datanets the model form offers this user: visible ones of a kind the Model Factory trains on."""
    if not user.is_authenticated:
        return Datanet.objects.none()
    return Datanet.objects.filter(pk__in=datanet_ids_visible(user), record_kind__in=record_kinds).order_by("title")


def train_job_readable(user: User, job: Job) -> bool:
    """The owner of the Datanet a run trained on watches it (read-only), as its builder does."""
    return TrainingRun.objects.filter(job=job, snapshot__datanet__owner=user).exists()
