"""Proofs from an anchored epoch's published dump: the dump's bytes, one address's proof, the newest proof.

A proof carries everything needed to claim with it, including ready-made calldata for the distributor's ``claim``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from django.core.files.storage import default_storage
from eth_utils import is_address, to_checksum_address
from hexbytes import HexBytes
from web3 import Web3

from core.errors import NotFound, UserError
from settlement.chain import client
from settlement.merkle import StandardMerkleTree
from settlement.models import PayoutAddress, Settlement

State = Settlement.State


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
