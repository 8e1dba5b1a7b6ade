"""From receipts to tokens in a wallet: close, settle, prove, claim, verify; on the embedded chain and anvil."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from web3 import Web3

from settlement import anchoring, claims, epochs, proofs, rewards, verification
from settlement.chain import client
from settlement.chain import config as chain_config
from settlement.models import Epoch, Settlement
from settlement.tests.factories import linked_user, model_version, ppm_shares, receipt

pytestmark = pytest.mark.django_db(transaction=True)
UNIT = 10**18


def settle(number: int, web3: Web3, **kwargs: object) -> Settlement:
    settlement = anchoring.epoch_settle_start(actor=None, number=number)
    return anchoring.settlement_run(settlement.pk, web3=web3, timeout=60, poll=0.05, **kwargs)


def test_epoch_settles_and_contributor_claims(settle_chain: Web3) -> None:
    alice, bob = linked_user(username="alice"), linked_user(username="bob")
    version = model_version()
    receipt(version, ppm_shares({alice: 3, bob: 1}), fee=100)
    epoch = epochs.epoch_close(actor=None, number=rewards.epoch_open_get().number)

    settlement = settle(epoch.number, settle_chain)

    assert settlement.state == Settlement.State.CONFIRMED, (settlement.alarm, settlement.last_error)
    # A first settlement says what it did, not "already anchored" (issue 15, counters that lie).
    assert settlement.note.startswith(f"anchored by our transaction {settlement.tx_hash}"), settlement.note
    epoch.refresh_from_db()
    assert epoch.status == Epoch.Status.SETTLED
    distributor = chain_config.deployment(settle_chain).distributor
    assert client.onchain_root(settle_chain, distributor, epoch.number) == settlement.root
    proof = proofs.proof_get(epoch_number=epoch.number, address=alice.wallet_address)
    assert int(proof["cumulative"]) == 100 * UNIT * 60 // 100 * 3 // 4
    relay = claims.claim_relay(user=alice, web3=settle_chain)
    assert relay.paid == int(proof["cumulative"])
    status = claims.claim_status(user=alice, web3=settle_chain)
    assert status["balance"] == int(proof["cumulative"]) and status["claimable"] == 0
    assert verification.verify_dump(proofs.dump_bytes(settlement), web3=settle_chain, epoch=epoch.number) == []


def test_verify_epoch_command_recomputes_root_against_chain(settle_chain: Web3, node: Any, tmp_path: Path) -> None:
    alice = linked_user()
    receipt(model_version(), ppm_shares({alice: 1}), fee=9)
    epoch = epochs.epoch_close(actor=None, number=rewards.epoch_open_get().number)
    settlement = settle(epoch.number, settle_chain)
    dump = tmp_path / "dump.json"
    dump.write_bytes(proofs.dump_bytes(settlement))
    rpc = {"rpc": node.url} if node.url else {}
    out = io.StringIO()

    call_command("verify_epoch", epoch.number, dump=str(dump), stdout=out, **rpc)
    assert "OK" in out.getvalue()

    tampered = json.loads(dump.read_bytes())
    tampered["tree"]["values"][0]["value"][1] = str(int(tampered["tree"]["values"][0]["value"][1]) + 1)
    dump.write_text(json.dumps(tampered))
    with pytest.raises(CommandError):
        call_command("verify_epoch", epoch.number, dump=str(dump), stdout=io.StringIO(), stderr=io.StringIO(), **rpc)
