"""Epoch valuation (the model as a whole), who may value a Datanet, and the flags it sends to curators.

Any classifier version can be valued: KNN-Shapley of every training record against the validation split, a
cross-fitted label check and self-influence from the gradient index. Only the Datanet's *valuing version* (chosen by
its owner, ``valuation_designate``; by default the owner's own newest valued version) has consequences: its flags
go to curators (``flags_sync``: one open flag per record and reason across versions; a dismissal holds until the
evidence grows by ``DISMISSAL_MARGIN``) and settlement splits the Datanet's pool by its values. Any other version's
valuation affects only that version's own receipts. A confirmed flag rejects the record and is the only source of
penalty points (``settlement.penalties``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from django.db import transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import User
from attribution.engine.flagging import VALUE_Z, label_contradicted, label_threshold, robust_z, value_harmful
from attribution.models import AttributionIndex, Flag, RecordValuation, ValuationDesignation
from attribution.selectors import train_entries, validation_entries, valuing_version
from core.errors import Conflict, Forbidden, NotFound, UserError
from core.jobs import JobProgress, job_create, job_enqueue, job_fail, job_run, job_succeed
from core.models import Job
from datanets import selectors as datanet_selectors
from datanets.models import Datanet, Record
from models_factory import predictors
from models_factory.models import MLModel, ModelVersion

# A dismissed flag reopens only when the valuing version's severity for that record and reason rises by at least
# this much over the severity the curator saw (0.15 of the cross-fitted margin: a model that was unsure becoming
# sure). A new version, retrain or designation with the same evidence never reopens it.
DISMISSAL_MARGIN = 0.15
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
    from attribution.indexes import similarity_embed  # indexes imports this module

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
    # A head-only version's embeddings come from the frozen encoder. A fine-tuned encoder has seen the labels, flips
    # included, and maps a flipped record next to its wrong label, so the label check and KNN-Shapley read features
    # of the frozen packaged encoder instead (the demo: 5 of 10 planted flips found on fine-tuned features).
    frozen_features = version.method != "head"
    embed = similarity_embed if frozen_features else predictor.embed
    if not frozen_features and record is not None and (Path(record.path) / "embeddings.npy").exists():
        stored = np.load(Path(record.path) / "embeddings.npy")
        ids = np.load(Path(record.path) / "record_ids.npy")
        if len(stored) == len(entries) and [e[0] for e in entries] == ids.tolist():
            train_emb = stored
    if train_emb is None:
        train_emb = embed([d["text"] for *_, d in entries])
    val_emb = embed([d["text"] for d in val])
    labels = {label: i for i, label in enumerate(predictor.labels)}
    train_y = np.array([labels[d["label"]] for *_, d in entries])
    val_y = np.array([labels[d["label"]] for d in val])
    progress.update(1, message="KNN-Shapley", force=True)
    values = knn_shapley(train_emb, train_y, val_emb, val_y, k=min(5, len(entries)))
    progress.update(2, message="Cross-fitted label check", force=True)
    crossfit = cross_fit(train_emb, train_y, n_classes=len(predictor.labels), extra_emb=val_emb, extra_labels=val_y)
    progress.update(3, message="Self-influence", force=True)
    self_inf: np.ndarray | None = None
    if record is not None:
        from attribution.engine import GradientIndex

        index = GradientIndex.load(
            Path(record.path) / "gradient", predictor.gradient_head(), predictor.per_example_loss
        )
        self_inf = index.self_scores()
    n = len(entries)
    margin_cut = label_threshold(crossfit.probabilities, train_y)
    contradicted = label_contradicted(crossfit.margin, threshold=margin_cut)
    harmful = value_harmful(values, crossfit.own, threshold=margin_cut)
    flagged = contradicted | harmful
    z = robust_z(values)
    order = np.argsort(values)
    rank = {int(i): r + 1 for r, i in enumerate(order)}
    rows = []
    for i, (record_id, _, _, data) in enumerate(entries):
        si = float(self_inf[i]) if self_inf is not None else None
        suggested = predictor.labels[crossfit.best_other[i]]
        evidence = {
            "knn_shapley": float(values[i]),
            "knn_shapley_robust_z": round(float(z[i]), 2),
            "rank_of_n": [rank[i], n],
            "label": data.get("label"),
            "cross_fit": {
                "own_label_probability": round(float(crossfit.own[i]), 4),
                "suggested_label": suggested,
                "suggested_probability": round(float(crossfit.probabilities[i, crossfit.best_other[i]]), 4),
                "margin": round(float(crossfit.margin[i]), 4),
                "margin_cut": round(margin_cut, 4),
                "folds": crossfit.folds,
            },
            "self_influence": si,
        }
        rows.append(
            RecordValuation(
                version=version,
                record_id=record_id,
                knn_shapley=float(values[i]),
                self_influence=si,
                flagged=bool(flagged[i]),
                reasons=[
                    r.value for r, on in ((Flag.Reason.LABEL, contradicted[i]), (Flag.Reason.VALUE, harmful[i])) if on
                ],
                severity=round(
                    float(
                        max(
                            np.clip(crossfit.margin[i], 0.0, 1.0), np.clip(-z[i] / (2 * VALUE_Z), 0.0, 1.0) * harmful[i]
                        )
                    ),
                    4,
                ),
                evidence=evidence,
            )
        )
    with transaction.atomic():
        RecordValuation.objects.filter(version=version).delete()
        RecordValuation.objects.bulk_create(rows, batch_size=2000)
        audit_record(
            actor=None,
            action="valuation.run",
            target=version,
            after={"records": len(rows), "flagged": int(flagged.sum())},
        )
    valuer, _ = valuing_version(version.ml_model.datanet)
    sent = flags_sync(version=version) if valuer is not None and valuer.pk == version.pk else None
    if sent is None:
        message = (
            f"Valued {len(rows):,} records; {int(flagged.sum()):,} look mislabeled. This version is not the Datanet's "
            "valuing version, so this affects only its own receipts."
        )
    else:
        message = (
            f"Valued {len(rows):,} records; {int(flagged.sum()):,} look mislabeled, {sent:,} newly sent to curators"
        )
    job_succeed(
        job=job,
        result={"records": len(rows), "flagged": int(flagged.sum()), "sent_to_curators": sent},
        message=message,
    )


def _summary(reason: str, evidence: dict[str, Any]) -> str:
    cf = evidence.get("cross_fit") or {}
    if reason == Flag.Reason.LABEL and cf:
        return (
            f"Labelled '{evidence.get('label')}', but a model trained without this record gives "
            f"'{cf.get('suggested_label')}' {cf.get('suggested_probability', 0):.2f} against "
            f"{cf.get('own_label_probability', 0):.2f} for its own label."
        )
    if reason == Flag.Reason.VALUE:
        return (
            f"Its KNN-Shapley value ({evidence.get('knn_shapley', 0):.3g}) lies far below the rest (robust z "
            f"{evidence.get('knn_shapley_robust_z', 0):.1f}): it makes the model worse on the validation split, and a "
            f"model trained without it gives its label '{evidence.get('label')}' only "
            f"{cf.get('own_label_probability', 0):.2f}."
        )
    return Flag.Reason(reason).label if reason in Flag.Reason.values else reason


def flags_sync(*, version: ModelVersion) -> int:
    """Send the valuing version's flagged records to curators; returns how many flags it opened.

    An open flag for the same record and reason (raised by any version) is updated in place. A dismissed one holds
    unless the severity rose by ``DISMISSAL_MARGIN`` over what was dismissed; a confirmed one is final (the record
    is rejected)."""
    opened = 0
    with transaction.atomic():
        valued = list(RecordValuation.objects.filter(version=version, flagged=True).order_by("record_id"))
        ids = [v.record_id for v in valued]
        latest: dict[tuple[int, str], Flag] = {}
        for flag in Flag.objects.select_for_update().filter(record_id__in=ids).order_by("created_at", "pk"):
            latest[(flag.record_id, flag.reason)] = flag
        for v in valued:
            for reason in v.reasons:
                flag = latest.get((v.record_id, reason))
                summary = _summary(reason, v.evidence)
                if flag is not None and flag.status == Flag.Status.OPEN:
                    flag.version, flag.severity, flag.evidence, flag.summary = version, v.severity, v.evidence, summary
                    flag.save(update_fields=["version", "severity", "evidence", "summary", "updated_at"])
                    continue
                if flag is not None and flag.status == Flag.Status.CONFIRMED:
                    continue
                if flag is not None and flag.status == Flag.Status.DISMISSED:
                    held = flag.dismissed_severity if flag.dismissed_severity is not None else flag.severity
                    if v.severity < held + DISMISSAL_MARGIN:
                        continue
                Flag.objects.create(
                    record_id=v.record_id,
                    version=version,
                    reason=reason,
                    summary=summary,
                    severity=v.severity,
                    evidence=v.evidence,
                )
                opened += 1
        audit_record(actor=None, action="flags.sync", target=version, after={"opened": opened})
    return opened


def valuation_designate(
    *, actor: User, datanet: Datanet, version_id: int | None = None, builders: list[str] | None = None
) -> ValuationDesignation:
    """The owner chooses which version values the Datanet (``version_id``), or whose models may (``builders``:
    usernames; the owner's own models always may). The valuing version's flags are sent to curators at once."""
    if actor.pk != datanet.owner_id:
        raise Forbidden(f"Only the owner of {datanet.title} chooses which model version values it.")
    version = None
    if version_id is not None:
        version = ModelVersion.objects.filter(pk=version_id, ml_model__datanet=datanet).first()
        if version is None:
            raise NotFound(f"{datanet.title} has no model version #{version_id}; choose a version trained on it.")
        if version.ml_model.kind != MLModel.Kind.CLASSIFIER:
            raise UserError("Only classifier versions are valued; choose a classifier version.")
    names = sorted({b.strip() for b in builders or [] if b.strip()})
    users = list(User.objects.filter(username__in=names))
    missing = sorted(set(names) - {u.username for u in users})
    if missing:
        raise UserError(f"There is no user {', '.join(repr(m) for m in missing)}; name builders by their username.")
    with transaction.atomic():
        designation, _ = ValuationDesignation.objects.select_for_update().get_or_create(datanet=datanet)
        before = {
            "version": designation.version_id,
            "builders": sorted(designation.builders.values_list("username", flat=True)),
        }
        designation.version = version
        designation.designated_by = actor
        designation.save()
        designation.builders.set(users)
        audit_record(
            actor=actor,
            action="valuation.designate",
            target=designation,
            before=before,
            after={"version": version.pk if version else None, "builders": names},
        )
        valuer, _ = valuing_version(datanet)
        if valuer is not None and RecordValuation.objects.filter(version=valuer).exists():
            flags_sync(version=valuer)
    return designation


def flag_resolve(*, actor: User, flag_id: int, decision: str, reason: str = "") -> Flag:
    """A curator of the flagged record's Datanet confirms the flag (the record is rejected and leaves future
    snapshots) or dismisses it (the record stays and earns credit again)."""
    status = FLAG_DECISIONS.get(decision)
    if status is None:
        raise UserError(f"Decide 'confirm' or 'dismiss', not {decision!r}.")
    with transaction.atomic():
        flag = Flag.objects.select_for_update().filter(pk=flag_id).first()
        # A flag on a Datanet the actor cannot see answers like a missing one: a 403 would say it exists.
        if flag is None or not datanet_selectors.can_view(actor, flag.record.datanet):
            raise NotFound(f"There is no flag #{flag_id}.")
        if not datanet_selectors.is_curator(actor, flag.record.datanet):
            raise Forbidden("Only this Datanet's curators review flagged records.")
        if flag.status != Flag.Status.OPEN:
            raise Conflict(f"This flag is already {flag.get_status_display().lower()}.")
        flag.status = status
        flag.resolved_by = actor
        flag.resolved_at = timezone.now()
        if status == Flag.Status.DISMISSED:
            flag.dismissed_severity = flag.severity
        flag.save(update_fields=["status", "resolved_by", "resolved_at", "dismissed_severity", "updated_at"])
        if status == Flag.Status.CONFIRMED:
            Record.objects.filter(pk=flag.record_id).update(status=Record.Status.REJECTED)
        after: dict[str, Any] = {"record": flag.record_id, "reason": flag.reason, "severity": flag.severity}
        if reason:
            after["note"] = reason
        audit_record(actor=actor, action=f"flag.{decision}", target=flag, after=after)
    return flag
