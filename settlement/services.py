"""Settlement runs, published dumps, proofs and claims.

A settlement is a state machine in the database (``Settlement.State``). ``settlement_step`` takes the row's lock,
does the one step its state names, and commits; every step is safe to repeat after a crash at any point:

- pending: build the tree of (address, cumulative) and the dump, store both; the root never changes after this.
- built: read the chain first (our root there: done; another root: stop and alarm), then sign locally and store
  the raw transaction, its hash and nonce.
- signed: broadcast the stored bytes (again, after a restart: the same bytes).
- broadcast: look for a receipt of any stored transaction by hash; a transaction the node forgot is broadcast
  again; one pending longer than SETTLEMENT_STUCK_SECONDS is re-signed with the same nonce and higher fees.
- mined: wait for SETTLEMENT_CONFIRMATIONS, check the root on chain, mark the epoch settled.

``settlement_run`` drives the steps, waiting with backoff while the chain does not answer.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from eth_utils import is_address, to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import TransactionNotFound

from accounts.audit import audit_record
from accounts.models import User
from accounts.services import reward_address
from core.errors import Conflict, Forbidden, NotFound, UserError
from core.jobs import JobProgress, job_create, job_enqueue, job_fail, job_run, job_succeed
from core.models import Job
from settlement import onchain
from settlement.chain import client
from settlement.chain.client import ChainError, ChainRevert, ChainUnavailable, NonceConflict
from settlement.merkle import StandardMerkleTree, keccak256
from settlement.models import Allocation, ClaimRelay, Epoch, PayoutAddress, Settlement, SettlementTx

log = logging.getLogger(__name__)


ENCODING = ["address", "uint256"]
DUMP_FORMAT = "datanets-epoch-v1"
# An epoch with no payable account still anchors (chain epochs are strictly sequential): one leaf nobody can claim.
EMPTY_LEAF = ("0x0000000000000000000000000000000000000000", 0)
State = Settlement.State


class SettlementWaiting(Exception):
    """Nothing to do yet (a transaction is pending, confirmations are coming, an earlier epoch goes first)."""


def canonical_bytes(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# ---- starting a settlement -----------------------------------------------------------------------------------


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


# ---- the state machine ---------------------------------------------------------------------------------------


def settlement_step(settlement_id: int, web3: Web3) -> bool:
    """Do the step the settlement's state names, under its row lock. True when the state moved."""
    with transaction.atomic():
        settlement = Settlement.objects.select_for_update().select_related("epoch").get(pk=settlement_id)
        if settlement.is_terminal:
            return False
        before = settlement.state
        step = {
            State.PENDING: _build,
            State.BUILT: _check_and_sign,
            State.SIGNED: _broadcast,
            State.BROADCAST: _await_receipt,
            State.MINED: _await_confirmations,
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
            web3 = web3 or onchain.w3()
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


@dataclass
class Leaves:
    values: list[tuple[str, int]]
    accounts: list[dict[str, Any]]
    unlinked: list[dict[str, Any]]


def _cumulative_through(number: int) -> dict[int, int]:
    cumulative: dict[int, int] = {}
    rows = Allocation.objects.filter(epoch__number__lte=number).values_list("account_id", "cumulative")
    for account_id, amount in rows.iterator(chunk_size=5000):
        cumulative[account_id] = max(cumulative.get(account_id, 0), int(amount))
    return cumulative


def _leaves(number: int) -> Leaves:
    """(address, cumulative) per payout address, updating PayoutAddress; accounts without a wallet are listed."""
    cumulative = _cumulative_through(number)
    this_epoch = dict(
        Allocation.objects.filter(epoch__number=number).values_list("account_id", "amount").iterator(chunk_size=5000)
    )
    users = {
        pk: (username, wallet)
        for pk, username, wallet in User.objects.filter(pk__in=list(cumulative)).values_list(
            "pk", "username", "wallet_address"
        )
    }
    payouts = {p.address: p for p in PayoutAddress.objects.select_for_update()}
    by_account: dict[int, list[PayoutAddress]] = defaultdict(list)
    for payout in payouts.values():
        by_account[payout.account_id].append(payout)
    unlinked = []
    changed, created = [], []
    for account_id, total in sorted(cumulative.items()):
        username, wallet = users[account_id]
        if not wallet:
            credited = sum(int(p.cumulative) for p in by_account[account_id])
            if total > credited:
                unlinked.append({"account": username, "cumulative": str(total), "unpublished": str(total - credited)})
            continue
        address = to_checksum_address(wallet)
        elsewhere = sum(int(p.cumulative) for p in by_account[account_id] if p.address != address)
        amount = total - elsewhere
        payout = payouts.get(address)
        if payout is None:
            payout = PayoutAddress(address=address, account_id=account_id, cumulative=0)
            payouts[address] = payout
            created.append(payout)
        elif payout.account_id != account_id:
            raise ChainError(f"{address} was published for another account; resolve by hand before settling.")
        else:
            changed.append(payout)
        if amount < int(payout.cumulative):
            raise ChainError(f"{address}'s cumulative would fall from {payout.cumulative} to {amount}; refusing.")
        payout.cumulative = amount
        payout.through_epoch = number
    PayoutAddress.objects.bulk_create(created, batch_size=5000)
    PayoutAddress.objects.bulk_update(changed, ["cumulative", "through_epoch"], batch_size=5000)
    names = {pk: name for pk, (name, _) in users.items()}
    values, accounts = [], []
    for payout in sorted(payouts.values(), key=lambda p: p.address):
        if int(payout.cumulative) <= 0:
            continue
        values.append((payout.address, int(payout.cumulative)))
        accounts.append(
            {
                "account": names.get(payout.account_id, str(payout.account_id)),
                "address": payout.address,
                "cumulative": str(payout.cumulative),
                "epoch_amount": str(this_epoch.get(payout.account_id, 0))
                if users.get(payout.account_id, ("", ""))[1]
                and to_checksum_address(users[payout.account_id][1]) == payout.address
                else "0",
            }
        )
    return Leaves(values=values, accounts=accounts, unlinked=unlinked)


def _build(settlement: Settlement, web3: Web3) -> None:
    epoch = settlement.epoch
    previous = Epoch.objects.filter(number=epoch.number - 1).first()
    if previous is not None and previous.status != Epoch.Status.SETTLED:
        raise SettlementWaiting(f"epoch {previous.number} must be settled first")
    deployment = onchain.deployment(web3)
    leaves = _leaves(epoch.number)
    values = leaves.values or [EMPTY_LEAF]
    tree = StandardMerkleTree.of(values, ENCODING)
    total = sum(amount for _, amount in leaves.values)
    dump = {
        "format": DUMP_FORMAT,
        "epoch": epoch.number,
        "chain_id": deployment.chain_id,
        "distributor": deployment.distributor,
        "token": deployment.token,
        "root": tree.root,
        "total_cumulative": str(total),
        "receipts_root": epoch.receipts_root,
        "receipt_count": epoch.receipt_count,
        "fees_in": str(epoch.fees_in),
        "pools_in": str(epoch.pools_in),
        "platform": str(epoch.platform_amount),
        "carried_over": str(epoch.carried_over),
        "closed_at": epoch.closed_at.isoformat() if epoch.closed_at else None,
        "accounts": leaves.accounts,
        "unlinked": leaves.unlinked,
        "tree": tree.dump(),
    }
    body = canonical_bytes(dump)
    data_hash = "0x" + keccak256(body).hex()
    name = default_storage.save(f"settlement/epoch-{epoch.number}-{data_hash[2:18]}.json", ContentFile(body))
    settlement.chain_id = deployment.chain_id
    settlement.distributor = deployment.distributor
    settlement.root = tree.root
    settlement.data_hash = data_hash
    settlement.total_cumulative = total
    settlement.leaf_count = len(leaves.values)
    settlement.unlinked_count = len(leaves.unlinked)
    settlement.dump_name = name
    settlement.dump_size = len(body)
    settlement.state = State.BUILT
    settlement.note = f"tree of {len(leaves.values):,} accounts built; dump published"


def _alarm(settlement: Settlement, message: str) -> None:
    settlement.state = State.FAILED
    settlement.alarm = message
    epoch = settlement.epoch
    epoch.status = Epoch.Status.FAILED
    epoch.save(update_fields=["status"])
    log.error("settlement of epoch %s stopped: %s", epoch.number, message)
    audit_record(actor=None, action="rewards.settle_alarm", target=settlement, after={"alarm": message})


def _confirm(settlement: Settlement, web3: Web3, note: str) -> None:
    settlement.state = State.CONFIRMED
    settlement.confirmed_at = timezone.now()
    settlement.note = note
    epoch = settlement.epoch
    epoch.status = Epoch.Status.SETTLED
    epoch.settled_at = settlement.confirmed_at
    epoch.save(update_fields=["status", "settled_at"])
    deployment = onchain.deployment(web3)
    onchain.fund_distributor_if_dev(web3, deployment, needed=int(settlement.total_cumulative))
    audit_record(
        actor=None,
        action="rewards.settle_confirmed",
        target=settlement,
        after={"epoch": epoch.number, "root": settlement.root, "tx_hash": settlement.tx_hash},
    )


def _anchored_log(settlement: Settlement, web3: Web3) -> dict[str, Any] | None:
    contract = client.distributor_contract(web3, settlement.distributor)
    deployment = onchain.deployment(web3)
    logs = client.call(
        lambda: contract.events.Anchored().get_logs(
            from_block=deployment.block_number, argument_filters={"epoch": settlement.epoch.number}
        )
    )
    return dict(logs[0]) if logs else None


def _adopt_chain_anchor(settlement: Settlement, web3: Web3, note: str) -> None:
    """Our root is on chain already (a transaction of ours landed while we were not looking): record it."""
    found = _anchored_log(settlement, web3)
    if found is not None:
        receipt = client.get_receipt(web3, found["transactionHash"].to_0x_hex())
        settlement.tx_hash = found["transactionHash"].to_0x_hex()
        settlement.block_number = int(found["blockNumber"])
        if receipt is not None:
            settlement.gas_used = int(receipt["gasUsed"])
            settlement.confirmations = client.confirmations(web3, receipt)
    _confirm(settlement, web3, note)


def _check_chain(settlement: Settlement, web3: Web3) -> bool:
    """True when the chain already decided this epoch (done or alarmed)."""
    number = settlement.epoch.number
    onchain_root = client.onchain_root(web3, settlement.distributor, number)
    if onchain_root is None:
        return False
    if onchain_root.lower() == settlement.root.lower():
        _adopt_chain_anchor(settlement, web3, "already anchored on chain with our root")
    else:
        _alarm(
            settlement,
            f"Epoch {number} is anchored on chain with root {onchain_root}, not ours ({settlement.root}). "
            "Nothing was sent. Check who holds the anchor role before doing anything else.",
        )
    return True


def _check_and_sign(settlement: Settlement, web3: Web3) -> None:
    if _check_chain(settlement, web3):
        return
    number = settlement.epoch.number
    last = client.last_epoch(web3, settlement.distributor)
    if last < number - 1:
        raise SettlementWaiting(f"the chain is at epoch {last}; epoch {number - 1} must be anchored first")
    key = onchain.anchor_key(web3)
    sender = client.address_of(key)
    nonce = int(client.call(lambda: web3.eth.get_transaction_count(sender, "pending")))
    try:
        tx = client.build_anchor_tx(
            web3,
            settlement.distributor,
            sender=sender,
            epoch=number,
            root=settlement.root,
            data_hash=settlement.data_hash,
            total_cumulative=int(settlement.total_cumulative),
            nonce=nonce,
        )
    except ChainRevert as exc:
        if not _check_chain(settlement, web3):
            _alarm(settlement, f"The anchor transaction would revert: {exc.reason}. Nothing was sent.")
        return
    _store_signed(settlement, tx, key)
    settlement.anchor_address = sender
    settlement.note = f"signed with nonce {nonce}"


def _jsonable(tx: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.to_0x_hex() if isinstance(v, HexBytes) else v) for k, v in tx.items()}


def _store_signed(settlement: Settlement, tx: dict[str, Any], key: str) -> None:
    raw, tx_hash = client.sign(tx, key)
    SettlementTx.objects.create(
        settlement=settlement,
        nonce=int(tx["nonce"]),
        tx_hash=tx_hash,
        raw="0x" + raw.hex(),
        fields=_jsonable(tx),
        max_fee_per_gas=str(tx.get("maxFeePerGas", tx.get("gasPrice", 0))),
    )
    settlement.nonce = int(tx["nonce"])
    settlement.tx_hash = tx_hash
    settlement.state = State.SIGNED


def _send_stored(settlement: Settlement, web3: Web3, stored: SettlementTx) -> bool:
    """Broadcast stored bytes; False when the nonce went to a transaction that is not this one."""
    try:
        client.broadcast(web3, stored.raw)
    except NonceConflict:
        return False
    stored.broadcast_at = timezone.now()
    stored.broadcasts += 1
    stored.save(update_fields=["broadcast_at", "broadcasts"])
    return True


def _broadcast(settlement: Settlement, web3: Web3) -> None:
    stored = settlement.transactions.order_by("-id").first()
    assert stored is not None
    if _send_stored(settlement, web3, stored):
        settlement.state = State.BROADCAST
        settlement.note = f"broadcast {stored.tx_hash}"
    else:
        _nonce_taken(settlement, web3)


def _nonce_taken(settlement: Settlement, web3: Web3) -> None:
    """Our nonce was used, and not by a transaction of ours that we can see mined."""
    for stored in settlement.transactions.order_by("-id"):
        receipt = client.get_receipt(web3, stored.tx_hash)
        if receipt is not None:
            _record_mined(settlement, web3, stored.tx_hash, receipt)
            return
    if _check_chain(settlement, web3):
        return
    # Another transaction from the anchor key took the nonce, so none of ours can ever land: sign again with a fresh
    # nonce. The root stays the one stored.
    settlement.state = State.BUILT
    settlement.note = f"nonce {settlement.nonce} was used by another transaction; signing again with a new nonce"


def _record_mined(settlement: Settlement, web3: Web3, tx_hash: str, receipt: dict[str, Any]) -> None:
    settlement.tx_hash = tx_hash
    settlement.block_number = int(receipt["blockNumber"])
    settlement.gas_used = int(receipt["gasUsed"])
    if int(receipt["status"]) == 1:
        settlement.state = State.MINED
        settlement.note = f"mined in block {settlement.block_number}"
        return
    reason = client.revert_reason(web3, tx_hash)
    if not _check_chain(settlement, web3):
        _alarm(settlement, f"The anchor transaction {tx_hash} reverted: {reason}.")


def node_knows(web3: Web3, tx_hash: str) -> bool:
    """Whether the node has the transaction (pending or mined)."""
    try:
        client.call(lambda: web3.eth.get_transaction(tx_hash))
        return True
    except TransactionNotFound:
        return False


def _await_receipt(settlement: Settlement, web3: Web3) -> None:
    stored_txs = list(settlement.transactions.order_by("-id"))
    for stored in stored_txs:
        receipt = client.get_receipt(web3, stored.tx_hash)
        if receipt is not None:
            _record_mined(settlement, web3, stored.tx_hash, receipt)
            return
    sender = Web3.to_checksum_address(settlement.anchor_address)
    mined_nonce = int(client.call(lambda: web3.eth.get_transaction_count(sender, "latest")))
    if settlement.nonce is not None and mined_nonce > settlement.nonce:
        _nonce_taken(settlement, web3)
        return
    latest = stored_txs[0]
    underpriced = False
    if not node_knows(web3, latest.tx_hash):
        # Dropped from the mempool, or the node restarted without it: the same signed bytes go out again.
        try:
            sent = _send_stored(settlement, web3, latest)
        except ChainError as exc:
            if not any(word in str(exc).lower() for word in ("fee", "underpriced")):
                raise
            sent, underpriced = True, True  # the node refuses the old fees: re-sign below
        if not sent:
            _nonce_taken(settlement, web3)
            return
        if not underpriced:
            settlement.note = f"the node did not know {latest.tx_hash}; broadcast the stored bytes again"
            return
    waited = (timezone.now() - (latest.broadcast_at or latest.created_at)).total_seconds()
    if underpriced or waited >= onchain.stuck_after_seconds():
        bumped = client.bump_fees(latest.fields)
        fresh = client.fee_fields(web3)
        bumped["maxPriorityFeePerGas"] = max(bumped["maxPriorityFeePerGas"], fresh["maxPriorityFeePerGas"])
        bumped["maxFeePerGas"] = max(bumped["maxFeePerGas"], fresh["maxFeePerGas"])
        _store_signed(settlement, bumped, onchain.anchor_key(web3))
        settlement.note = (
            f"{latest.tx_hash} pending for {waited:.0f} s: re-signed nonce {settlement.nonce} with max fee "
            f"{bumped['maxFeePerGas']} wei"
        )
        return
    raise SettlementWaiting(f"waiting for {latest.tx_hash} to be mined ({waited:.0f} s)")


def _await_confirmations(settlement: Settlement, web3: Web3) -> None:
    receipt = client.get_receipt(web3, settlement.tx_hash)
    if receipt is None:
        settlement.state = State.BROADCAST  # the block that held it is gone (a reorg, a chain reset)
        settlement.note = "the receipt disappeared; waiting for the transaction again"
        return
    settlement.block_number = int(receipt["blockNumber"])
    settlement.confirmations = client.confirmations(web3, receipt)
    needed = onchain.confirmations_needed()
    if settlement.confirmations < needed:
        raise SettlementWaiting(f"{settlement.confirmations} of {needed} confirmations")
    if _check_chain(settlement, web3):
        return
    _alarm(settlement, f"The anchor transaction {settlement.tx_hash} is mined but no root is on chain for the epoch.")


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


# ---- dumps and proofs ----------------------------------------------------------------------------------------


def dump_bytes(settlement: Settlement) -> bytes:
    with default_storage.open(settlement.dump_name, "rb") as handle:
        return handle.read()


@lru_cache(maxsize=4)
def _loaded_dump(name: str) -> tuple[dict[str, Any], StandardMerkleTree, dict[str, int]]:
    with default_storage.open(name, "rb") as handle:
        dump = json.loads(handle.read())
    tree = StandardMerkleTree.load(dump["tree"])
    index = {str(value[0]).lower(): i for i, value in tree.entries()}
    return dump, tree, index


def claim_calldata(
    distributor: str, web3: Web3 | None, *, account: str, epoch: int, cumulative: int, proof: list[str]
) -> str:
    contract = client.distributor_contract(web3 or Web3(), distributor)
    return contract.encode_abi("claim", args=[account, epoch, cumulative, [HexBytes(p) for p in proof]])


def proof_get(*, epoch_number: int, address: str) -> dict[str, Any]:
    """The proof of ``address``'s leaf in an anchored epoch's tree, with everything needed to claim with it."""
    if not is_address(address):
        raise UserError(f"{address!r} is not an Ethereum address (0x followed by 40 hex digits).")
    settlement = Settlement.objects.select_related("epoch").filter(epoch__number=epoch_number).first()
    if settlement is None or settlement.state != State.CONFIRMED:
        raise NotFound(f"Epoch {epoch_number} is not anchored yet, so it has no proofs.")
    dump, tree, index = _loaded_dump(settlement.dump_name)
    position = index.get(address.lower())
    if position is None:
        raise NotFound(f"{to_checksum_address(address)} has no leaf in epoch {epoch_number}'s tree.")
    account, cumulative = tree.values[position]
    proof = tree.get_proof(position)
    return {
        "epoch": epoch_number,
        "address": to_checksum_address(account),
        "cumulative": str(int(cumulative)),
        "proof": proof,
        "root": tree.root,
        "chain_id": settlement.chain_id,
        "distributor": settlement.distributor,
        "calldata": claim_calldata(
            settlement.distributor,
            None,
            account=to_checksum_address(account),
            epoch=epoch_number,
            cumulative=int(cumulative),
            proof=proof,
        ),
    }


def latest_proof_for(address: str) -> dict[str, Any] | None:
    """The proof from the newest anchored epoch whose tree holds ``address`` (cumulative: it covers all before)."""
    settled = Settlement.objects.filter(state=State.CONFIRMED).select_related("epoch").order_by("-epoch__number")
    payout = PayoutAddress.objects.filter(address=to_checksum_address(address)).first()
    if payout is None:
        return None
    for settlement in settled:
        if settlement.epoch.number < 1:
            continue
        try:
            return proof_get(epoch_number=settlement.epoch.number, address=address)
        except NotFound:
            continue
    return None


# ---- claims --------------------------------------------------------------------------------------------------


def claim_status(*, user: User, web3: Web3 | None = None) -> dict[str, Any]:
    """What a contributor can claim: the newest proof for their wallet, what the contract paid, their balance."""
    status: dict[str, Any] = {
        "address": user.wallet_address,
        "proof": None,
        "claimed": 0,
        "claimable": 0,
        "balance": None,
        "chain_error": "",
    }
    if not user.wallet_address:
        return status
    proof = latest_proof_for(user.wallet_address)
    status["proof"] = proof
    try:
        web3 = web3 or onchain.w3()
        deployment = onchain.deployment(web3)
        status["claimed"] = client.claimed(web3, deployment.distributor, user.wallet_address)
        status["balance"] = client.token_balance(web3, deployment.token, user.wallet_address)
        status["token"] = deployment.token
    except (ChainError, onchain.ChainNotConfigured) as exc:
        status["chain_error"] = str(exc)
    if proof is not None:
        status["claimable"] = max(0, int(proof["cumulative"]) - int(status["claimed"]))
    return status


def claim_relay(*, user: User, web3: Web3 | None = None) -> ClaimRelay:
    """Send the user's claim from the platform's relayer; the contract pays the user's address."""
    try:
        address = reward_address(user=user)
    except ValidationError as exc:
        raise UserError(" ".join(exc.messages)) from None
    proof = latest_proof_for(address)
    if proof is None:
        raise NotFound("Nothing of yours is in an anchored epoch yet: rewards become claimable once an epoch settles.")
    web3 = web3 or onchain.w3()
    cumulative = int(proof["cumulative"])
    with transaction.atomic():
        # One relayed claim at a time: they share the relayer's nonce.
        deployment = onchain.deployment(web3)
        type(deployment).objects.select_for_update().filter(pk=deployment.pk).exists()
        already = client.claimed(web3, proof["distributor"], address)
        if cumulative <= already:
            raise Conflict(
                f"Nothing to claim: the contract already paid {address} {already} base units, all of epoch "
                f"{proof['epoch']}'s cumulative {cumulative}."
            )
        relay = ClaimRelay.objects.create(
            account=user, address=address, epoch_number=proof["epoch"], cumulative=cumulative
        )
        try:
            receipt = client.claim(
                web3,
                proof["distributor"],
                onchain.relayer_key(web3),
                account=address,
                epoch=proof["epoch"],
                cumulative_amount=cumulative,
                proof=proof["proof"],
            )
        except ChainRevert as exc:
            relay.status, relay.error = ClaimRelay.Status.FAILED, exc.reason
            relay.save(update_fields=["status", "error"])
            raise Conflict(f"The contract refused the claim: {exc.reason}.") from None
        except ChainUnavailable:
            raise UserError("The chain is not answering right now; try again in a minute.") from None
        relay.tx_hash = receipt["transactionHash"].to_0x_hex()
        relay.paid = cumulative - already
        relay.status = ClaimRelay.Status.CONFIRMED
        relay.save(update_fields=["tx_hash", "paid", "status"])
        audit_record(
            actor=user,
            action="rewards.claim_relay",
            target=relay,
            after={"epoch": proof["epoch"], "paid": str(relay.paid), "tx_hash": relay.tx_hash},
        )
    return relay


# ---- verification without the database ---------------------------------------------------------------------


def verify_dump(dump_body: bytes, *, web3: Web3, epoch: int, distributor: str | None = None) -> list[str]:
    """Recompute the root from a published dump and compare it with the chain. Returns problems (empty = agrees)."""
    problems: list[str] = []
    dump = json.loads(dump_body)
    if dump.get("epoch") != epoch:
        problems.append(f"the dump is for epoch {dump.get('epoch')}, not {epoch}")
    values = [(v["value"][0], int(v["value"][1])) for v in dump["tree"]["values"]]
    recomputed = StandardMerkleTree.of(values, ENCODING)
    try:
        StandardMerkleTree.load(dump["tree"])
    except ValueError as exc:
        problems.append(f"the dump's tree is not a valid Merkle tree of its values: {exc}")
    if recomputed.root != dump["root"]:
        problems.append(f"the dump says root {dump['root']} but its values give {recomputed.root}")
    total = sum(amount for _, amount in values)
    if str(total) != dump["total_cumulative"]:
        problems.append(f"the leaves add up to {total}, the dump says {dump['total_cumulative']}")
    distributor = distributor or dump["distributor"]
    onchain_root = client.onchain_root(web3, distributor, epoch)
    if onchain_root is None:
        problems.append(f"epoch {epoch} is not anchored at {distributor}")
    elif onchain_root.lower() != recomputed.root.lower():
        problems.append(f"the chain holds root {onchain_root} for epoch {epoch}, the dump gives {recomputed.root}")
    contract = client.distributor_contract(web3, distributor)
    events = client.call(lambda: contract.events.Anchored().get_logs(from_block=0, argument_filters={"epoch": epoch}))
    if events:
        args = events[0]["args"]
        data_hash = "0x" + keccak256(dump_body).hex()
        if "0x" + bytes(args["dataHash"]).hex() != data_hash:
            problems.append(
                f"the anchored data hash is 0x{bytes(args['dataHash']).hex()}, the dump hashes to {data_hash}"
            )
        if int(args["totalCumulative"]) != total:
            problems.append(f"the anchored total is {args['totalCumulative']}, the leaves add up to {total}")
    return problems
