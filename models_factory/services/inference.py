"""Deployment and paid inference: deploy or undeploy a version, run it on one input and charge its price.

Apps to the right (attribution) act on each paid inference through ``hooks``."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import transaction

from accounts.audit import audit_record
from accounts.credits import InsufficientCredit, credits_debit, credits_refund
from accounts.models import User
from core.canonical import content_hash
from core.errors import Conflict, Forbidden, NotFound, UserError
from models_factory import hooks, predictors
from models_factory.artifacts import artifact_local_path
from models_factory.models import Inference, MLModel, ModelVersion
from models_factory.selectors import versions_visible
from models_factory.services.training import sentence

log = logging.getLogger(__name__)

# --- Deployment and serving -----------------------------------------------------------------------------------


MIN_VALIDATION_FOR_GATE = 20


def below_majority_reason(version: ModelVersion) -> str:
    """Why deploying this version needs a confirmation ('' when it does not): a classifier whose validation accuracy
    and macro-F1 do not both beat always answering the most frequent label earns fees for nothing a guess could not
    give. Below MIN_VALIDATION_FOR_GATE validation rows the comparison is noise, and the card shows it without a gate.
    """
    metrics = version.metrics
    if version.ml_model.kind != MLModel.Kind.CLASSIFIER or metrics.get("beats_majority") is not False:
        return ""
    if int(metrics.get("n_validation") or 0) < MIN_VALIDATION_FOR_GATE:
        return ""
    majority = (version.metrics.get("baselines") or {}).get("majority") or {}
    return (
        f"{version} does not beat the majority class on its validation split: accuracy "
        f"{version.metrics.get('accuracy', 0):.3f} vs {majority.get('accuracy', 0):.3f} and macro-F1 "
        f"{version.metrics.get('macro_f1', 0):.3f} vs {majority.get('macro_f1', 0):.3f} for always answering the "
        "most frequent label. Consumers would pay for answers a guess gives. Train a better version, or deploy it "
        "anyway with confirm."
    )


def version_deploy(
    *,
    actor: User,
    version: ModelVersion,
    deployed: bool,
    price_credits: int | None = None,
    confirm: bool = False,
) -> ModelVersion:
    if version.ml_model.builder_id != actor.pk and not actor.is_superuser:
        raise Forbidden("Only the model's builder can deploy or undeploy it.")
    reason = below_majority_reason(version) if deployed and not version.deployed else ""
    if reason and not confirm:
        raise UserError(reason, extra={"code": "below_majority_baseline"})
    if price_credits is not None and not 0 < price_credits <= 10**12:
        raise UserError("The price per inference must be a whole number of credits above zero.")
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().get(pk=version.pk)
        before = {"deployed": version.deployed, "price_credits": version.price_credits}
        version.deployed = deployed
        if price_credits is not None:
            version.price_credits = price_credits
        version.save(update_fields=["deployed", "price_credits"])
        audit_record(
            actor=actor,
            action="model.deploy" if deployed else "model.undeploy",
            target=version,
            before=before,
            after={
                "deployed": deployed,
                "price_credits": version.price_credits,
                "confirmed_below_majority": bool(reason),
            },
        )
    return version


# Past this an input is refused; below it a classifier truncates to its trained length (and says so).
MAX_INPUT_CHARS = 100_000


def infer(*, consumer: User, version_id: int, payload: dict[str, Any]) -> Inference:
    """Run a deployed version on one input and charge its price. Nothing is charged when anything fails."""

    # A version of a Datanet the consumer cannot see answers like a missing one.
    version = versions_visible(consumer).filter(pk=version_id).first()
    if version is None:
        raise NotFound(f"There is no model version #{version_id}.")
    if not version.deployed:
        raise Conflict(f"{version} is not deployed; ask its builder to deploy it, or pick a deployed version.")
    text = payload.get("text") if version.ml_model.kind == MLModel.Kind.CLASSIFIER else payload.get("prompt")
    field = "text" if version.ml_model.kind == MLModel.Kind.CLASSIFIER else "prompt"
    if not isinstance(text, str) or not text.strip():
        raise UserError(f"Send the input as '{field}': a non-empty string.")
    if len(text) > MAX_INPUT_CHARS:
        raise UserError(
            f"The input is {len(text):,} characters long, more than this service accepts ({MAX_INPUT_CHARS:,}). "
            "Send a shorter text: a classifier reads only its first few hundred tokens anyway.",
            extra={"code": "input_too_long"},
        )
    if version.ml_model.kind == MLModel.Kind.GENERATIVE:
        try:
            max_tokens = int(payload.get("max_tokens", 64))
            temperature = float(payload.get("temperature", 0.0))
        except (TypeError, ValueError):
            raise UserError("max_tokens must be a whole number and temperature a number.") from None
        if not 1 <= max_tokens <= 1024:
            raise UserError(f"max_tokens must be between 1 and 1024, not {max_tokens}.")
        if not 0.0 <= temperature <= 2.0:
            raise UserError(f"temperature must be between 0 and 2, not {temperature}.")
    # Reserve the fee before the model runs: parallel calls with credit for five run five times, not twenty.
    try:
        credits_debit(user=consumer, amount=version.price_credits, reason=f"inference on {version} (reserved)")
    except InsufficientCredit as exc:
        raise UserError(
            f"This call costs {version.price_credits} credits and your balance is {exc.balance}. Buy credits first.",
            extra={"code": "insufficient_credit", "balance": exc.balance, "price": version.price_credits},
        ) from None
    try:
        inference = _run_and_record(version, consumer, payload, text, field)
    except BaseException:
        credits_refund(user=consumer, amount=version.price_credits, reason=f"inference on {version} failed")
        raise
    # What apps to the right add to the answer (attribution: the receipt, or why there is none yet).
    inference.extra_fields = hooks.inference_done(inference)
    return inference


def _run_and_record(version: ModelVersion, consumer: User, payload: dict[str, Any], text: str, field: str) -> Inference:
    from models_factory.trainers import InputError, TrainerError

    max_tokens = int(payload.get("max_tokens", 64))
    temperature = float(payload.get("temperature", 0.0))
    started = time.perf_counter()
    try:
        if version.ml_model.kind == MLModel.Kind.CLASSIFIER:
            (detail,) = predictors.classifier_predictor(version).predict_detailed([text])
            output: dict[str, Any] = detail
            tokens_in, tokens_out = detail["tokens_kept"], 0
        else:
            generated, tokens_in, tokens_out = predictors.generative_server().generate(
                str(artifact_local_path(version.artifact_location)),
                text,
                max_new_tokens=max_tokens,
                temperature=temperature,
                seed=int(payload.get("seed", 0)),
            )
            if not generated.strip():
                # Refused rather than recorded with fee 0: a paid call is what receipts, rewards and settlement
                # build on, and an empty output has nothing to attribute; the caller's reserved fee is refunded.
                raise UserError(
                    f"The model generated no text for this prompt ({tokens_out} token{'s' if tokens_out != 1 else ''}"
                    " that decode to nothing), so nothing was charged. Try a longer max_tokens, a temperature above"
                    " 0, or a different prompt."
                )
            output = {"text": generated}
    except InputError as exc:
        raise UserError(sentence(str(exc))) from None
    except TrainerError as exc:
        log.exception("serving failed")
        raise UserError(f"The model could not be loaded: {exc}") from None
    latency_ms = (time.perf_counter() - started) * 1000
    clean_input = {field: text, **{k: payload[k] for k in ("max_tokens", "temperature", "seed") if k in payload}}
    with transaction.atomic():
        inference = Inference.objects.create(
            version=version,
            consumer=consumer,
            input=clean_input,
            input_hash=content_hash(clean_input),
            output=output,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            fee=version.price_credits,
            latency_ms=latency_ms,
        )
    return inference
