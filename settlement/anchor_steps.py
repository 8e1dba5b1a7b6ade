"""The chain steps of a settlement: check the chain, sign, store, broadcast, follow receipts, count confirmations.

Each step works on a ``Settlement`` row in the state that names it (see ``anchoring``). The built, signed and
broadcast steps run under the row's lock, because what they store (the signed bytes, the nonce) must be stored once
before anything goes out. The mined step only reads the chain, so it reads first with no lock held, then takes the
lock, checks the row is still where it was, and writes (``confirmations_step``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import TransactionNotFound

from accounts.audit import audit_record
from core.events import event_emit
from settlement.chain import client
from settlement.chain import config as chain_config
from settlement.chain.client import ChainError, ChainRevert, NonceConflict
from settlement.models import Epoch, Settlement, SettlementTx

log = logging.getLogger(__name__)

State = Settlement.State


class SettlementWaiting(Exception):
    """Nothing to do yet (a transaction is pending, confirmations are coming, an earlier epoch goes first)."""


def _alarm(settlement: Settlement, message: str) -> None:
    settlement.state = State.FAILED
    settlement.alarm = message
    epoch = settlement.epoch
    epoch.status = Epoch.Status.FAILED
    epoch.save(update_fields=["status"])
    log.error("settlement of epoch %s stopped: %s", epoch.number, message)
    audit_record(actor=None, action="rewards.settle_alarm", target=settlement, after={"alarm": message})


def _confirm(settlement: Settlement, note: str) -> None:
    settlement.state = State.CONFIRMED
    settlement.confirmed_at = timezone.now()
    settlement.note = note
    epoch = settlement.epoch
    epoch.status = Epoch.Status.SETTLED
    epoch.settled_at = settlement.confirmed_at
    epoch.save(update_fields=["status", "settled_at"])
    audit_record(
        actor=None,
        action="rewards.settle_confirmed",
        target=settlement,
        after={"epoch": epoch.number, "root": settlement.root, "tx_hash": settlement.tx_hash},
    )
    event_emit(
        "epoch.settled",
        public=True,
        data={
            "epoch": epoch.number,
            "root": settlement.root,
            "data_hash": settlement.data_hash,
            "tx_hash": settlement.tx_hash,
            "block_number": settlement.block_number,
            "chain_id": settlement.chain_id,
            "distributor": settlement.distributor,
            "leaves": settlement.leaf_count,
        },
    )


def _anchored_log(settlement: Settlement, web3: Web3) -> dict[str, Any] | None:
    contract = client.distributor_contract(web3, settlement.distributor)
    deployment = chain_config.deployment(web3)
    logs = client.call(
        lambda: contract.events.Anchored().get_logs(
            from_block=deployment.block_number, argument_filters={"epoch": settlement.epoch.number}
        )
    )
    return dict(logs[0]) if logs else None


@dataclass
class ChainVerdict:
    """What the chain holds for the settlement's epoch; when it is our root, where our anchor landed."""

    root: str | None
    ours: bool = False
    tx_hash: str = ""
    block_number: int | None = None
    gas_used: int | None = None
    confirmations: int | None = None


def _chain_verdict(settlement: Settlement, web3: Web3) -> ChainVerdict:
    """Chain calls only (no settlement row is written): the epoch's root on chain, and when it is ours the anchor's
    transaction; a dev chain's distributor is topped up to pay the claims."""
    onchain_root = client.onchain_root(web3, settlement.distributor, settlement.epoch.number)
    if onchain_root is None:
        return ChainVerdict(root=None)
    if onchain_root.lower() != settlement.root.lower():
        return ChainVerdict(root=onchain_root)
    verdict = ChainVerdict(root=onchain_root, ours=True)
    found = _anchored_log(settlement, web3)
    if found is not None:
        verdict.tx_hash = found["transactionHash"].to_0x_hex()
        verdict.block_number = int(found["blockNumber"])
        receipt = client.get_receipt(web3, verdict.tx_hash)
        if receipt is not None:
            verdict.gas_used = int(receipt["gasUsed"])
            verdict.confirmations = client.confirmations(web3, receipt)
    deployment = chain_config.deployment(web3)
    chain_config.fund_distributor_if_dev(web3, deployment, needed=int(settlement.total_cumulative))
    return verdict


def _apply_verdict(settlement: Settlement, verdict: ChainVerdict) -> bool:
    """Write what the chain decided; True when it decided this epoch (done or alarmed)."""
    if verdict.root is None:
        return False
    if verdict.ours:
        # Our root is on chain already (a transaction of ours landed while we were not looking): record it.
        if verdict.tx_hash:
            settlement.tx_hash = verdict.tx_hash
            settlement.block_number = verdict.block_number
            if verdict.gas_used is not None:
                settlement.gas_used = verdict.gas_used
                settlement.confirmations = verdict.confirmations or 0
        sent_by_us = (
            bool(verdict.tx_hash)
            and SettlementTx.objects.filter(settlement=settlement, tx_hash=verdict.tx_hash).exists()
        )
        where = f" in block {verdict.block_number}" if verdict.block_number else ""
        _confirm(
            settlement,
            f"anchored by our transaction {verdict.tx_hash}{where}"
            if sent_by_us
            else "our root was already on chain (a transaction of an earlier attempt landed): recorded, nothing sent",
        )
    else:
        _alarm(
            settlement,
            f"Epoch {settlement.epoch.number} is anchored on chain with root {verdict.root}, not ours "
            f"({settlement.root}). Nothing was sent. Check who holds the anchor role before doing anything else.",
        )
    return True


def _check_chain(settlement: Settlement, web3: Web3) -> bool:
    """True when the chain already decided this epoch (done or alarmed)."""
    return _apply_verdict(settlement, _chain_verdict(settlement, web3))


def sign_step(settlement: Settlement, web3: Web3) -> None:
    if _check_chain(settlement, web3):
        return
    number = settlement.epoch.number
    last = client.last_epoch(web3, settlement.distributor)
    if last < number - 1:
        raise SettlementWaiting(f"the chain is at epoch {last}; epoch {number - 1} must be anchored first")
    key = chain_config.anchor_key(web3)
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


def broadcast_step(settlement: Settlement, web3: Web3) -> None:
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


def receipt_step(settlement: Settlement, web3: Web3) -> None:
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
    if underpriced or waited >= chain_config.stuck_after_seconds():
        bumped = client.bump_fees(latest.fields)
        fresh = client.fee_fields(web3)
        bumped["maxPriorityFeePerGas"] = max(bumped["maxPriorityFeePerGas"], fresh["maxPriorityFeePerGas"])
        bumped["maxFeePerGas"] = max(bumped["maxFeePerGas"], fresh["maxFeePerGas"])
        _store_signed(settlement, bumped, chain_config.anchor_key(web3))
        settlement.note = (
            f"{latest.tx_hash} pending for {waited:.0f} s: re-signed nonce {settlement.nonce} with max fee "
            f"{bumped['maxFeePerGas']} wei"
        )
        return
    raise SettlementWaiting(f"waiting for {latest.tx_hash} to be mined ({waited:.0f} s)")


def confirmations_step(settlement_id: int, web3: Web3) -> bool:
    """The mined step: the receipt, its confirmations and the root on chain are read with no lock held; then the
    row is locked, re-read, and written only if it is still mined with the same transaction. True when it moved."""
    seen = Settlement.objects.select_related("epoch").get(pk=settlement_id)
    receipt = client.get_receipt(web3, seen.tx_hash)
    confirmations, verdict = 0, None
    if receipt is not None:
        confirmations = client.confirmations(web3, receipt)
        needed = chain_config.confirmations_needed()
        if confirmations < needed:
            raise SettlementWaiting(f"{confirmations} of {needed} confirmations")
        verdict = _chain_verdict(seen, web3)
    with transaction.atomic():
        settlement = Settlement.objects.select_for_update().select_related("epoch").get(pk=settlement_id)
        if settlement.state != State.MINED or settlement.tx_hash != seen.tx_hash:
            return False  # another runner moved it while we read the chain; the next step starts from its state
        if receipt is None or verdict is None:
            settlement.state = State.BROADCAST  # the block that held it is gone (a reorg, a chain reset)
            settlement.note = "the receipt disappeared; waiting for the transaction again"
        else:
            settlement.block_number = int(receipt["blockNumber"])
            settlement.confirmations = confirmations
            if not _apply_verdict(settlement, verdict):
                _alarm(
                    settlement,
                    f"The anchor transaction {settlement.tx_hash} is mined but no root is on chain for the epoch.",
                )
        settlement.last_error = ""
        settlement.next_retry_at = None
        settlement.save()
        return settlement.state != State.MINED
