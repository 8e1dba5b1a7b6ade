"""Claims: what a contributor can claim, and the platform relaying a claim for them (the contract pays the
contributor's address whoever sends the transaction).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from web3 import Web3

from accounts.audit import audit_record
from accounts.models import User
from accounts.services import reward_address
from core.errors import Conflict, NotFound, UserError
from settlement.chain import client
from settlement.chain import config as chain_config
from settlement.chain.client import ChainError, ChainRevert, ChainUnavailable, NonceConflict
from settlement.models import ClaimRelay
from settlement.proofs import latest_proof_for

# Relayed claims share the relayer's nonce; two sent at once can pick the same one, and the later is sent again.
NONCE_ATTEMPTS = 3


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
        web3 = web3 or chain_config.w3()
        deployment = chain_config.deployment(web3)
        status["claimed"] = client.claimed(web3, deployment.distributor, user.wallet_address)
        status["balance"] = client.token_balance(web3, deployment.token, user.wallet_address)
        status["token"] = deployment.token
    except (ChainError, chain_config.ChainNotConfigured) as exc:
        status["chain_error"] = str(exc)
    if proof is not None:
        status["claimable"] = max(0, int(proof["cumulative"]) - int(status["claimed"]))
    return status


def _send_claim(web3: Web3, proof: dict[str, Any], *, address: str, cumulative: int) -> dict[str, Any]:
    """Sign, broadcast and wait for the receipt (no database transaction is open here). A nonce another relayed
    claim took meanwhile is retried with the next one."""
    key = chain_config.relayer_key(web3)
    for attempt in range(NONCE_ATTEMPTS):
        tx = client.build_claim_tx(
            web3,
            proof["distributor"],
            sender=client.address_of(key),
            account=address,
            epoch=proof["epoch"],
            cumulative_amount=cumulative,
            proof=proof["proof"],
        )
        try:
            return client.send_and_wait(web3, tx, key)
        except NonceConflict:
            if attempt == NONCE_ATTEMPTS - 1:
                raise
        except ChainError as exc:
            if isinstance(exc, ChainRevert | ChainUnavailable) or attempt == NONCE_ATTEMPTS - 1:
                raise
            if not any(word in str(exc).lower() for word in ("nonce", "underpriced", "replacement")):
                raise
    raise AssertionError("unreachable")


def claim_relay(*, user: User, web3: Web3 | None = None) -> ClaimRelay:
    """Send the user's claim from the platform's relayer; the contract pays the user's address.

    The chain work (what the contract paid so far, sending, waiting for the receipt) runs outside any database
    transaction; the relay row and its audit entry are written once the receipt is in."""
    try:
        address = reward_address(user=user)
    except ValidationError as exc:
        raise UserError(" ".join(exc.messages)) from None
    proof = latest_proof_for(address)
    if proof is None:
        raise NotFound("Nothing of yours is in an anchored epoch yet: rewards become claimable once an epoch settles.")
    web3 = web3 or chain_config.w3()
    cumulative = int(proof["cumulative"])
    already = client.claimed(web3, proof["distributor"], address)
    if cumulative <= already:
        raise Conflict(
            f"Nothing to claim: the contract already paid {address} {already} base units, all of epoch "
            f"{proof['epoch']}'s cumulative {cumulative}."
        )
    fields = {"account": user, "address": address, "epoch_number": proof["epoch"], "cumulative": cumulative}
    try:
        receipt = _send_claim(web3, proof, address=address, cumulative=cumulative)
    except ChainRevert as exc:
        ClaimRelay.objects.create(**fields, status=ClaimRelay.Status.FAILED, error=exc.reason)
        raise Conflict(f"The contract refused the claim: {exc.reason}.") from None
    except ChainUnavailable:
        raise UserError("The chain is not answering right now; try again in a minute.") from None
    with transaction.atomic():
        relay = ClaimRelay.objects.create(
            **fields,
            tx_hash=receipt["transactionHash"].to_0x_hex(),
            paid=cumulative - already,
            status=ClaimRelay.Status.CONFIRMED,
        )
        audit_record(
            actor=user,
            action="rewards.claim_relay",
            target=relay,
            after={"epoch": proof["epoch"], "paid": str(relay.paid), "tx_hash": relay.tx_hash},
        )
    return relay
