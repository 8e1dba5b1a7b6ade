"""A receipt for every paid inference: the records that shaped the output, their contributors' shares, the fee.

Classifiers are scored by the gradient index (the query is the loss of the predicted label); generated text by its
verbatim spans in the training records, or by embedding similarity when no span of the minimum length matches. A
receipt's id is the SHA-256 of its canonical JSON body; ``receipt_recompute`` rebuilds the index from the
published snapshot and the model artifact and must produce the same id.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from typing import Any

import numpy as np
from django.db import transaction

from attribution.indexes import (
    SPAN_MIN_TOKENS,
    classifier_index_build,
    closest_similarity,
    index_load,
    similarity_embed,
    span_index_build,
)
from attribution.models import AttributionIndex, Citation, Receipt
from attribution.selectors import train_entries, uncredited_records
from core.canonical import canonical_json, content_hash
from core.errors import NotFound
from core.events import event_emit
from datanets.models import Record
from models_factory import predictors
from models_factory.models import Inference, MLModel, ModelVersion

log = logging.getLogger(__name__)

TOP_K = 16
PPM = 1_000_000
RECEIPT_FORMAT = "datanets-receipt-v1"


def contributor_shares(credit_by_contributor: dict[str, float]) -> list[dict[str, Any]]:
    """Contributor shares in millionths that sum to exactly 1,000,000 (largest remainder); positive credit only."""
    positive = {c: v for c, v in credit_by_contributor.items() if v > 0}
    total = sum(positive.values())
    if total <= 0:
        return []
    raw = {c: PPM * v / total for c, v in positive.items()}
    floors = {c: int(v) for c, v in raw.items()}
    left = PPM - sum(floors.values())
    for c in sorted(raw, key=lambda c: (-(raw[c] - floors[c]), c))[:left]:
        floors[c] += 1
    return [{"contributor": c, "share_ppm": floors[c]} for c in sorted(floors)]


def scores_for(
    version: ModelVersion, index: Any, extra: dict[str, Any], inference: Inference
) -> tuple[str, list[tuple[int, float]]]:
    """(method, [(position in training split, score)]) best first."""
    if version.ml_model.kind == MLModel.Kind.CLASSIFIER:
        import torch

        predictor = extra["predictor"]
        emb = torch.from_numpy(predictor.embed([inference.input["text"]]))
        target = torch.tensor([predictor.labels.index(inference.output["label"])])
        top = index.top_k(emb, target, min(TOP_K, index.n_train))
        return "gradient", [(int(i), float(s)) for i, s in zip(top.indices[0], top.scores[0])]
    tokenizer = extra["tokenizer"]
    text = str(inference.output.get("text", ""))
    if not text.strip():
        return "spans", []
    tokens = tokenizer(text, add_special_tokens=False)["input_ids"]
    credit = index.credit(tokens, min_len=SPAN_MIN_TOKENS)
    if not credit and extra.get("record_emb") is not None and len(extra["record_emb"]):
        # No verbatim span: credit the records closest in meaning to the prompt and answer (the planted-facts
        # benchmark puts the planting contributor first for 10/10 facts this way; spans alone credit 6/10).
        from attribution.engine import representation_similarity

        query = similarity_embed([f"{inference.input.get('prompt', '')}\n{text}"])
        top = representation_similarity(extra["record_emb"], query, k=min(TOP_K, len(extra["record_emb"])))
        return "similarity", [(int(i), round(float(v), 6)) for i, v in zip(top.indices[0], top.scores[0])]
    ranked = sorted(credit.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_K]
    return "spans", [(int(doc), float(weight)) for doc, weight in ranked]


def chance_check(version: ModelVersion, extra: dict[str, Any], inference: Inference, method: str) -> dict | None:
    """Is the input closer to the training data than random queries come (``indexes.CHANCE_QUERIES``)? None when
    the index has no calibration or the method needs none (a verbatim span is evidence in itself)."""
    chance = extra.get("chance_similarity")
    record_emb = extra.get("record_emb")
    if chance is None or record_emb is None or not len(record_emb) or method == "spans":
        return None
    if method == "gradient":
        query = extra["predictor"].embed([inference.input["text"]])
    else:
        query = similarity_embed([f"{inference.input.get('prompt', '')}\n{inference.output.get('text', '')}"])
    best = float(closest_similarity(record_emb, query)[0])
    return {
        "closest_similarity": round(best, 4),
        "chance_similarity": round(float(chance), 4),
        "abstained": best <= chance,
    }


def receipt_body(
    version: ModelVersion,
    inference: Inference,
    method: str,
    scored: list[tuple[int, float]],
    record_ids: np.ndarray,
    *,
    uncredited: set[int] | None = None,
    chance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The receipt. With ``chance`` (indexes built with a chance calibration) it says whether any record stood out;
    when none did, it abstains: the top-k stay listed as an explanation and no one is credited, so the contributors'
    part follows the Datanet's policy (its epoch pool, ``settlement.rewards``)."""
    ids = [int(record_ids[pos]) for pos, _ in scored]
    records = {r.pk: r for r in Record.objects.filter(pk__in=ids).select_related("contributor", "duplicate_of")}
    # Records flagged as likely mislabeled earn no credit until a curator clears them (``uncredited_records``). The
    # set is written into the receipt, so a later recompute credits exactly as this one did.
    if uncredited is None:
        uncredited = uncredited_records(version, ids)
    flagged = uncredited
    top: list[dict[str, Any]] = []
    credit: dict[str, float] = defaultdict(float)
    seen_clusters: set[int] = set()
    for pos, score in scored:
        rec = records[int(record_ids[pos])]
        cluster = rec.duplicate_of_id or rec.pk  # a duplicate cluster is credited once, to its earliest record
        score = float(f"{score:.6g}")
        top.append(
            {"record": rec.pk, "record_hash": rec.content_hash, "contributor": rec.contributor.username, "score": score}
        )
        abstained = bool(chance and chance["abstained"])
        if cluster not in seen_clusters and score > 0 and rec.pk not in flagged and not abstained:
            seen_clusters.add(cluster)
            credit[rec.contributor.username] += score
    body = {
        "format": RECEIPT_FORMAT,
        "inference": str(inference.pk),
        "model": version.ml_model.slug,
        "model_version": version.version,
        "snapshot_root": version.snapshot_root,
        "method": method,
        "input_hash": inference.input_hash,
        "output_hash": content_hash(inference.output),
        "top_k": top,
        "shares": contributor_shares(dict(credit)),
        "uncredited": sorted(flagged),
        "fee": int(inference.fee),
    }
    if chance is not None:
        body["chance"] = chance
    return body


def receipt_id(body: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(body)).hexdigest()


def attribution_status(version: ModelVersion) -> tuple[str, str]:
    record = AttributionIndex.objects.filter(version=version).first()
    if record is None:
        return "missing", "No attribution index exists for this version yet; its builder can build one."
    if record.status == AttributionIndex.Status.BUILDING:
        return "building", "The attribution index is still building; receipts start once it is ready."
    if record.status == AttributionIndex.Status.FAILED:
        return "failed", f"The attribution index failed to build: {record.error}"
    return "ready", ""


def receipt_create(*, inference: Inference) -> Receipt | None:
    """Write the receipt of an inference, or None when the version's index is not ready (nothing is invented)."""
    version = inference.version
    status, _ = attribution_status(version)
    if status != "ready":
        return None
    record = AttributionIndex.objects.get(version=version)
    index, extra = index_load(version, record)
    method, scored = scores_for(version, index, extra, inference)
    chance = chance_check(version, extra, inference, method)
    body = receipt_body(version, inference, method, scored, extra["record_ids"], chance=chance)
    rid = receipt_id(body)
    with transaction.atomic():
        receipt, created = Receipt.objects.get_or_create(
            id=rid,
            defaults={"inference": inference, "version": version, "method": method, "body": body, "fee": inference.fee},
        )
        if created:
            total = sum(max(t["score"], 0) for t in body["top_k"]) or 1.0
            contributor_of = dict(
                Record.objects.filter(pk__in=[t["record"] for t in body["top_k"]]).values_list("pk", "contributor_id")
            )
            Citation.objects.bulk_create(
                [
                    Citation(
                        receipt=receipt,
                        record_id=t["record"],
                        contributor_id=contributor_of[t["record"]],
                        rank=i,
                        score=t["score"],
                        credit_ppm=int(PPM * max(t["score"], 0) / total),
                    )
                    for i, t in enumerate(body["top_k"])
                ]
            )
            event_emit(
                "receipt.completed",
                datanet_id=version.ml_model.datanet_id,
                user_ids=[inference.consumer_id],
                data={
                    "receipt": rid,
                    "model": version.ml_model.slug,
                    "model_version": version.version,
                    "snapshot_root": version.snapshot_root,
                    "method": method,
                    "fee": str(inference.fee),
                    "shares": body["shares"],
                },
            )
    return receipt


def receipt_attach(inference: Inference) -> dict[str, Any]:
    """Attribute a paid output, and say so in the inference's answer (``models_factory.hooks.on_inference``). A
    missing or building index gives a status, never an invented receipt; a failure is reported, not raised."""
    inference.receipt_obj = None
    inference.attribution_status, inference.attribution_message = attribution_status(inference.version)
    if inference.attribution_status == "ready":
        try:
            inference.receipt_obj = receipt_create(inference=inference)
        except Exception:  # the call is paid and answered; a failed attribution is reported, not raised
            log.exception("attribution failed for inference %s", inference.pk)
            inference.attribution_status = "failed"
            inference.attribution_message = "Attribution failed for this call; it is logged and can be recomputed."
    receipt = inference.receipt_obj
    return {
        "attribution": {"status": inference.attribution_status, "message": inference.attribution_message},
        "receipt": {"id": receipt.id, **receipt.body, "explain_url": receipt.get_absolute_url()} if receipt else None,
    }


def receipt_get(receipt_id_: str) -> Receipt:
    receipt = Receipt.objects.select_related("version__ml_model", "inference").filter(pk=receipt_id_).first()
    if receipt is None:
        raise NotFound(f"There is no receipt {receipt_id_!r}. Receipt ids are 64 hex characters.")
    return receipt


def receipt_recompute(receipt_id_: str) -> tuple[dict[str, Any], str]:
    """Rebuild the index from the published snapshot and model artifact, and recompute the receipt from scratch."""
    receipt = receipt_get(receipt_id_)
    version, inference = receipt.version, receipt.inference
    if receipt.method == "gradient":
        index, params, embeddings = classifier_index_build(version)
        extra = {"predictor": predictors.classifier_predictor(version)}
    else:
        index, params, embeddings = span_index_build(version)
        extra = {"tokenizer": predictors.version_tokenizer(version)}
    extra |= {"record_emb": embeddings, "chance_similarity": params.get("chance_similarity")}
    ids = np.array([e[0] for e in train_entries(version)], dtype=np.int64)
    method, scored = scores_for(version, index, extra, inference)
    # A receipt written before indexes were calibrated carries no chance test; its recompute applies none either.
    chance = chance_check(version, extra, inference, method) if "chance" in receipt.body else None
    body = receipt_body(
        version, inference, method, scored, ids, uncredited=set(receipt.body.get("uncredited", [])), chance=chance
    )
    return body, receipt_id(body)
