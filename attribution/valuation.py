"""Epoch valuation (the model as a whole) and the flags it sends to curators.

For a classifier version: KNN-Shapley of every training record against the validation split, a cross-fitted label
check and self-influence from the gradient index; each signal flags a bounded tail of records. Flags wait for a
curator: ``flag_resolve`` confirms one (the record is rejected and leaves future snapshots) or dismisses it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from django.db import transaction

from accounts.audit import audit_record
from accounts.models import User
from attribution.models import AttributionIndex, Flag, RecordValuation
from attribution.selectors import train_entries, validation_entries
from core.errors import Conflict, Forbidden, NotFound, UserError
from core.jobs import JobProgress, job_create, job_enqueue, job_fail, job_run, job_succeed
from core.models import Job
from datanets import selectors as datanet_selectors
from datanets.models import Record
from models_factory import predictors
from models_factory.models import MLModel, ModelVersion

# Valuation flags: each signal sends at most this fraction of the training records to curators.
FLAG_TAIL = 0.05
# ...and the cross-fitted label check only where another label wins by at least this much probability.
MARGIN_MIN = 0.5
FLAG_DECISIONS = {"confirm": Flag.Status.CONFIRMED, "dismiss": Flag.Status.DISMISSED}


def valuation_request(*, version: ModelVersion, actor: User | None = None) -> Job:
    job = job_create(kind="valuation", target_id=version.pk, user=actor, message="Waiting for a worker")
    job_enqueue(job)
    return job


def valuation_run(*, job_id: str) -> None:
    job_run(job_id, _valuation)


def _valuation(job: Job) -> None:
    from attribution.engine import knn_shapley
    from attribution.engine.crossfit import cross_fit

    version = ModelVersion.objects.select_related("ml_model").get(pk=job.target_id)
    if version.ml_model.kind != MLModel.Kind.CLASSIFIER:
        job_succeed(job=job, message="Epoch valuation covers classifiers; generative versions are credited by spans")
        return
    progress = JobProgress(job, total=4, unit="steps")
    predictor = predictors.classifier_predictor(version)
    entries = train_entries(version)
    val = validation_entries(version)
    if len(entries) < 2 or not val:
        job_fail(job=job, error="Valuation needs at least two training records and a validation split.")
        return
    record = AttributionIndex.objects.filter(version=version, status=AttributionIndex.Status.READY).first()
    train_emb = None
    if record is not None and (Path(record.path) / "embeddings.npy").exists():
        stored = np.load(Path(record.path) / "embeddings.npy")
        ids = np.load(Path(record.path) / "record_ids.npy")
        if len(stored) == len(entries) and [e[0] for e in entries] == ids.tolist():
            train_emb = stored
    if train_emb is None:
        train_emb = predictor.embed([d["text"] for *_, d in entries])
    val_emb = predictor.embed([d["text"] for d in val])
    labels = {label: i for i, label in enumerate(predictor.labels)}
    train_y = np.array([labels[d["label"]] for *_, d in entries])
    val_y = np.array([labels[d["label"]] for d in val])
    progress.update(1, message="KNN-Shapley", force=True)
    values = knn_shapley(train_emb, train_y, val_emb, val_y, k=min(5, len(entries)))
    progress.update(2, message="Cross-fitted label check", force=True)
    crossfit = cross_fit(train_emb, train_y, n_classes=len(predictor.labels))
    progress.update(3, message="Self-influence", force=True)
    self_inf: np.ndarray | None = None
    if record is not None:
        from attribution.engine import GradientIndex

        index = GradientIndex.load(
            Path(record.path) / "gradient", predictor.gradient_head(), predictor.per_example_loss
        )
        self_inf = index.self_scores()
    n = len(entries)
    # Curators' attention is finite: each signal flags a bounded tail, chosen on the demo's planted flips and the
    # synthetic tests (benchmarks/attribution/demo_flips.py prints how each signal ranks them).
    tail = max(1, int(np.ceil(FLAG_TAIL * n)))
    # KNN-Shapley: negative and in the lowest tail, or far below the rest (robust z-score over 3): how a flipped
    # label inside a cluster of correct ones shows up even when its value stays just above zero.
    harmful_cut = float(np.sort(values)[tail - 1])
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median))) * 1.4826
    low_cut = median - 3 * mad if mad > 0 else -np.inf
    # Cross fitting: a model that never saw the record prefers another label by at least MARGIN_MIN, and the record
    # is in the worst tail by that margin.
    margin_cut = max(MARGIN_MIN, float(np.sort(crossfit.margin)[::-1][tail - 1]))
    outlier_cut = None
    if self_inf is not None:
        q1, q3 = np.percentile(self_inf, [25, 75])
        outlier_cut = float(q3 + 3 * (q3 - q1))
    with transaction.atomic():
        RecordValuation.objects.filter(version=version).delete()
        rows, flags = [], []
        order = np.argsort(values)
        rank = {int(i): r + 1 for r, i in enumerate(order)}
        for i, (record_id, _, _, data) in enumerate(entries):
            si = float(self_inf[i]) if self_inf is not None else None
            negative = bool(values[i] < 0 and values[i] <= harmful_cut) or bool(values[i] < low_cut)
            disagreed = bool(crossfit.margin[i] >= margin_cut)
            outlying = si is not None and outlier_cut is not None and si > outlier_cut
            flagged = negative or disagreed or outlying
            rows.append(
                RecordValuation(
                    version=version,
                    record_id=record_id,
                    knn_shapley=float(values[i]),
                    self_influence=si,
                    flagged=flagged,
                )
            )
            if flagged:
                reasons = [
                    r
                    for r, on in (
                        ("negative KNN-Shapley value", negative),
                        (f"the rest of the data says '{predictor.labels[crossfit.best_other[i]]}'", disagreed),
                        ("outlying self-influence", outlying),
                    )
                    if on
                ]
                flags.append(
                    Flag(
                        record_id=record_id,
                        version=version,
                        reason="; ".join(reasons),
                        evidence={
                            "knn_shapley": float(values[i]),
                            "rank_of_n": [rank[i], n],
                            "label": data.get("label"),
                            "cross_fit": {
                                "own_label_probability": round(float(crossfit.own[i]), 4),
                                "suggested_label": predictor.labels[crossfit.best_other[i]],
                                "suggested_probability": round(
                                    float(crossfit.probabilities[i, crossfit.best_other[i]]), 4
                                ),
                                "margin": round(float(crossfit.margin[i]), 4),
                                "margin_cut": round(margin_cut, 4),
                                "folds": crossfit.folds,
                            },
                            "self_influence": si,
                            "self_influence_cut": outlier_cut,
                        },
                    )
                )
        RecordValuation.objects.bulk_create(rows, batch_size=2000)
        Flag.objects.bulk_create(flags, batch_size=2000, ignore_conflicts=True)
        audit_record(
            actor=None, action="valuation.run", target=version, after={"records": len(rows), "flagged": len(flags)}
        )
    job_succeed(
        job=job,
        result={"records": len(rows), "flagged": len(flags)},
        message=f"Valued {len(rows):,} records; {len(flags):,} sent to curators",
    )


def flag_resolve(*, actor: User, flag_id: int, decision: str, reason: str = "") -> Flag:
    """A curator of the flagged record's Datanet confirms the flag (the record is rejected and leaves future
    snapshots) or dismisses it (the record stays and earns credit again)."""
    status = FLAG_DECISIONS.get(decision)
    if status is None:
        raise UserError(f"Decide 'confirm' or 'dismiss', not {decision!r}.")
    with transaction.atomic():
        flag = Flag.objects.select_for_update().filter(pk=flag_id).first()
        if flag is None:
            raise NotFound(f"There is no flag #{flag_id}.")
        if not datanet_selectors.is_curator(actor, flag.record.datanet):
            raise Forbidden("Only this Datanet's curators review flagged records.")
        if flag.status != Flag.Status.OPEN:
            raise Conflict(f"This flag is already {flag.get_status_display().lower()}.")
        flag.status = status
        flag.resolved_by = actor
        flag.save(update_fields=["status", "resolved_by"])
        if status == Flag.Status.CONFIRMED:
            Record.objects.filter(pk=flag.record_id).update(status=Record.Status.REJECTED)
        after: dict[str, Any] = {"record": flag.record_id, "reason": flag.reason}
        if reason:
            after["note"] = reason
        audit_record(actor=actor, action=f"flag.{decision}", target=flag, after=after)
    return flag
