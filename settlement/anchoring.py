"""Settling an epoch on chain: start it, drive its state machine, retry it after an alarm.

A settlement is a state machine in the database (``Settlement.State``). ``settlement_step`` does the one step the
row's state names and commits; every step is safe to repeat after a crash at any point:

- pending (``anchor_tree.build_step``): build the tree of (address, cumulative) and the dump, store both; the root
  never changes after this.
- built (``anchor_steps.sign_step``): read the chain first (our root there: done; another root: stop and alarm),
  then sign locally and store the raw transaction, its hash and nonce.
- signed (``broadcast_step``): broadcast the stored bytes (again, after a restart: the same bytes).
- broadcast (``receipt_step``): look for a receipt of any stored transaction by hash; a transaction the node forgot
  is broadcast again; one pending longer than SETTLEMENT_STUCK_SECONDS is re-signed with the same nonce and higher
  fees.
- mined (``confirmations_step``): wait for SETTLEMENT_CONFIRMATIONS, check the root on chain, mark the epoch
  settled. Its chain calls run with no lock held.

``settlement_run`` drives the steps, waiting with backoff while the chain does not answer; ``settle_job_run`` is the
worker's entry (a Job row shows the progress).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from web3 import Web3

from accounts.audit import audit_record
from accounts.models import User
from core.errors import Conflict, Forbidden, NotFound
from core.jobs import JobProgress, job_create, job_enqueue, job_fail, job_run, job_succeed
from core.models import Job
from settlement.anchor_steps import (
    SettlementWaiting,
    broadcast_step,
    confirmations_step,
    receipt_step,
    sign_step,
)
from settlement.anchor_tree import build_step
from settlement.chain import config as chain_config
from settlement.chain.client import ChainError, ChainUnavailable
from settlement.models import Epoch, Settlement

log = logging.getLogger(__name__)

State = Settlement.State


def epoch_settle_start(*, actor: User | None, number: int) -> Settlement:
    """Create the epoch's settlement (once: racing callers get the same row) and mark the epoch settling."""
    if actor is not None and not actor.is_staff:
        raise Forbidden("Only an admin can settle an epoch.")
    with transaction.atomic():
        epoch = Epoch.objects.select_for_update().filter(number=number).first()
        if epoch is None:
            raise NotFound(f"There is no epoch {number}.")
        if epoch.status == Epoch.Status.OPEN:
            raise Conflict(f"Epoch {number} is still open: close it and review its allocations first.")
        previous = Epoch.objects.filter(number=number - 1).first()
        if previous is not None and previous.status != Epoch.Status.SETTLED and epoch.status == Epoch.Status.CLOSED:
            raise Conflict(f"Epoch {number - 1} is not settled yet; epochs are anchored in order.")
        settlement, created = Settlement.objects.get_or_create(epoch=epoch)
        if epoch.status == Epoch.Status.FAILED and settlement.state == State.FAILED:
            raise Conflict(f"Epoch {number}'s settlement stopped with an alarm: {settlement.alarm} Resolve it first.")
        if created:
            epoch.status = Epoch.Status.SETTLING
            epoch.save(update_fields=["status"])
            audit_record(actor=actor, action="rewards.settle_start", target=settlement, after={"epoch": number})
    return settlement


def settlement_request(*, actor: User | None, number: int) -> tuple[Settlement, Job]:
    """Start (or resume) settling an epoch in a worker; the job row shows its progress."""
    settlement = epoch_settle_start(actor=actor, number=number)
    if settlement.is_terminal:
        raise Conflict(f"Epoch {number} is already {settlement.get_state_display().lower()}.")
    with transaction.atomic():
        active = Job.objects.filter(kind="settle", target_id=str(settlement.pk), status__in=Job.ACTIVE).first()
        if active is not None:
            return settlement, active
        job = job_create(kind="settle", target_id=settlement.pk, user=actor, message="Waiting for a worker")
        job_enqueue(job)
    return settlement, job


def settle_job_run(*, job_id: str) -> None:
    job_run(job_id, _settle_job)


def _settle_job(job: Job) -> None:
    progress = JobProgress(job, total=len(State.values) - 1, unit="steps")
    order = list(State.values)

    def report(settlement: Settlement) -> None:
        message = settlement.get_state_display()
        if settlement.last_error:
            message += f" · {settlement.last_error[:200]}"
        progress.update(order.index(settlement.state), message=message, force=True)

    settlement = settlement_run(int(job.target_id), on_change=report)
    if settlement.state == State.CONFIRMED:
        job_succeed(job=job, result={"tx_hash": settlement.tx_hash, "root": settlement.root}, message="Anchored")
    elif settlement.state == State.FAILED:
        job_fail(job=job, error=settlement.alarm, message="Stopped: see the alarm on the epoch page")
    else:
        job_fail(
            job=job,
            error=settlement.last_error or settlement.note,
            message="Not finished yet (the chain is slow or not answering); settle again to resume",
        )


def settlement_step(settlement_id: int, web3: Web3) -> bool:
    """Do the step the settlement's state names. True when the state moved.

    Pending, built, signed and broadcast run under the row's lock (what they store must be stored once before
    anything is sent); mined only reads the chain, and takes the lock just to write (``confirmations_step``)."""
    current = Settlement.objects.filter(pk=settlement_id).values_list("state", flat=True).first()
    if current == State.MINED:
        return confirmations_step(settlement_id, web3)
    with transaction.atomic():
        settlement = Settlement.objects.select_for_update().select_related("epoch").get(pk=settlement_id)
        if settlement.is_terminal:
            return False
        before = settlement.state
        if before == State.MINED:  # moved on by another runner since the read above
            return False
        step = {
            State.PENDING: build_step,
            State.BUILT: sign_step,
            State.SIGNED: broadcast_step,
            State.BROADCAST: receipt_step,
        }[State(before)]
        step(settlement, web3)
        settlement.last_error = ""
        settlement.next_retry_at = None
        settlement.save()
        return settlement.state != before


def settlement_run(
    settlement_id: int,
    *,
    web3: Web3 | None = None,
    stop_after: str | None = None,
    timeout: float = 600.0,
    poll: float = 0.2,
    backoff_max: float = 30.0,
    on_change: Any = None,
) -> Settlement:
    """Drive the steps until confirmed or failed (or ``stop_after`` is reached, or ``timeout`` passes). While the
    chain does not answer, retry with exponential backoff and show the error and next retry on the row."""
    deadline = time.monotonic() + timeout
    backoff = 0.5
    while True:
        settlement = Settlement.objects.get(pk=settlement_id)
        if settlement.is_terminal or (stop_after and settlement.state == stop_after):
            return settlement
        if time.monotonic() > deadline:
            return settlement
        try:
            web3 = web3 or chain_config.w3()
            moved = settlement_step(settlement_id, web3)
            backoff = 0.5
            if moved and on_change is not None:
                on_change(Settlement.objects.get(pk=settlement_id))
        except SettlementWaiting as wait:
            Settlement.objects.filter(pk=settlement_id).update(note=str(wait)[:300])
            time.sleep(poll)
        except (ChainUnavailable, ChainError, TimeoutError, ConnectionError) as exc:
            retry_at = timezone.now() + timedelta(seconds=backoff)
            message = f"{exc} (attempt will repeat at {retry_at:%H:%M:%S} UTC)"
            Settlement.objects.filter(pk=settlement_id).update(
                last_error=message[:2000], next_retry_at=retry_at, attempts=settlement.attempts + 1
            )
            log.warning("settlement %s: %s", settlement_id, message)
            if on_change is not None:
                on_change(Settlement.objects.get(pk=settlement_id))
            time.sleep(min(backoff, max(0.0, deadline - time.monotonic())))
            backoff = min(backoff * 2, backoff_max)


def settlement_retry(*, actor: User, number: int) -> Settlement:
    """After an alarm is understood: resume from the stored root (never a new one)."""
    if not actor.is_staff:
        raise Forbidden("Only an admin can retry a settlement.")
    with transaction.atomic():
        settlement = Settlement.objects.select_for_update().select_related("epoch").filter(epoch__number=number).first()
        if settlement is None or settlement.state != State.FAILED:
            raise Conflict(f"Epoch {number} has no stopped settlement to retry.")
        settlement.state = State.BUILT if settlement.root else State.PENDING
        settlement.alarm = ""
        settlement.save(update_fields=["state", "alarm", "updated_at"])
        settlement.epoch.status = Epoch.Status.SETTLING
        settlement.epoch.save(update_fields=["status"])
        audit_record(actor=actor, action="rewards.settle_retry", target=settlement)
    return settlement
