"""The sender under faults, on the embedded chain and on anvil. In every case exactly one anchor lands per epoch
and the database agrees with the chain.

Run one: ``pytest settlement/tests/test_settlement_faults.py -k "stuck and anvil"``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from conftest import ROOT, database_url_for_worker
from settlement import anchor_steps, anchoring, epochs, rewards
from settlement.chain import client
from settlement.chain import config as chain_config
from settlement.chain.anvil import anvil_node
from settlement.models import Epoch, Settlement, SettlementTx
from settlement.tests.conftest import Node, chain_env, configure_external_chain, require_anvil
from settlement.tests.factories import linked_user, model_version, ppm_shares, receipt

pytestmark = pytest.mark.django_db(transaction=True)
State = Settlement.State


def closed_epoch() -> Epoch:
    alice, bob = linked_user(), linked_user()
    receipt(model_version(), ppm_shares({alice: 1, bob: 2}), fee=7)
    return epochs.epoch_close(actor=None, number=rewards.epoch_open_get().number)


def run(settlement: Settlement, web3: Web3, **kwargs: Any) -> Settlement:
    return anchoring.settlement_run(settlement.pk, web3=web3, timeout=60, poll=0.05, **kwargs)


def anchors(web3: Web3, settlement: Settlement) -> list[Any]:
    contract = client.distributor_contract(web3, settlement.distributor)
    return list(contract.events.Anchored().get_logs(from_block=0, argument_filters={"epoch": settlement.epoch.number}))


def assert_one_anchor_agreeing(web3: Web3, settlement: Settlement) -> None:
    settlement.refresh_from_db()
    assert settlement.state == State.CONFIRMED, (settlement.alarm, settlement.last_error, settlement.note)
    assert settlement.epoch.status == Epoch.Status.SETTLED
    landed = anchors(web3, settlement)
    assert len(landed) == 1
    assert landed[0]["transactionHash"].to_0x_hex() == settlement.tx_hash
    assert "0x" + landed[0]["args"]["root"].hex() == settlement.root
    assert client.onchain_root(web3, settlement.distributor, settlement.epoch.number) == settlement.root
    receipt_ = client.get_receipt(web3, settlement.tx_hash)
    assert receipt_ is not None and receipt_["blockNumber"] == settlement.block_number
    assert receipt_["gasUsed"] == settlement.gas_used


def restart(node: Node) -> Web3:
    """A new process's view: the embedded chain replays its journal, an RPC node gets a new connection."""
    chain_config.forget_connections()
    return chain_config.w3()


def rpc(web3: Web3, method: str, *params: Any) -> Any:
    return web3.provider.make_request(method, list(params))  # type: ignore[arg-type]


def test_killed_after_signing_before_broadcast(settle_chain: Web3, node: Node) -> None:
    settlement = anchoring.epoch_settle_start(actor=None, number=closed_epoch().number)
    settlement = run(settlement, settle_chain, stop_after=State.SIGNED)
    signed = SettlementTx.objects.get(settlement=settlement)
    assert client.onchain_root(settle_chain, settlement.distributor, settlement.epoch.number) is None
    assert not anchor_steps.node_knows(settle_chain, signed.tx_hash)

    root = settlement.root
    web3 = restart(node)
    settlement = run(settlement, web3)

    assert settlement.root == root  # never recomputed once signed
    assert settlement.tx_hash == signed.tx_hash  # the stored bytes were what went out
    assert SettlementTx.objects.filter(settlement=settlement).count() == 1
    assert_one_anchor_agreeing(web3, settlement)


def test_killed_after_broadcast_before_receipt(settle_chain: Web3, node: Node) -> None:
    chain_config.deployment(settle_chain)
    if node.kind == "anvil":
        rpc(settle_chain, "evm_setAutomine", False)
    settlement = anchoring.epoch_settle_start(actor=None, number=closed_epoch().number)
    settlement = run(settlement, settle_chain, stop_after=State.BROADCAST)
    assert anchor_steps.node_knows(settle_chain, settlement.tx_hash)

    web3 = restart(node)
    if node.kind == "anvil":
        rpc(web3, "evm_setAutomine", True)
        rpc(web3, "evm_mine")
    settlement = run(settlement, web3)

    assert SettlementTx.objects.filter(settlement=settlement).count() == 1
    assert_one_anchor_agreeing(web3, settlement)


def test_stuck_at_low_fee_is_resigned_with_same_nonce(
    settle_chain: Web3, node: Node, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain_config.deployment(settle_chain)
    settlement = anchoring.epoch_settle_start(actor=None, number=closed_epoch().number)
    if node.kind == "anvil":
        rpc(settle_chain, "evm_setAutomine", False)
        settlement = run(settlement, settle_chain, stop_after=State.BROADCAST)
        # the base fee jumps far above what the transaction offers: no block will take it
        rpc(settle_chain, "anvil_setNextBlockBaseFeePerGas", hex(500 * 10**9))
        rpc(settle_chain, "evm_mine")
        assert client.get_receipt(settle_chain, settlement.tx_hash) is None
        rpc(settle_chain, "evm_setAutomine", True)
    else:
        # eth-tester mines every transaction at once; emulate a node that accepts the first one and never mines it
        real_broadcast = client.broadcast
        swallowed: list[str] = []

        def swallow_first(web3: Web3, raw: bytes | str) -> str:
            if not swallowed:
                swallowed.append(Web3.keccak(hexstr=raw if isinstance(raw, str) else raw.hex()).to_0x_hex())
                return swallowed[0]
            return real_broadcast(web3, raw)

        monkeypatch.setattr(client, "broadcast", swallow_first)
        monkeypatch.setattr(anchor_steps, "node_knows", lambda web3, tx_hash: True)
        settlement = run(settlement, settle_chain, stop_after=State.BROADCAST)
    first = SettlementTx.objects.get(settlement=settlement)

    settings.SETTLEMENT_STUCK_SECONDS = 0
    settlement = run(settlement, settle_chain)

    txs = list(SettlementTx.objects.filter(settlement=settlement))
    assert len(txs) == 2 and {t.nonce for t in txs} == {first.nonce}
    assert int(txs[1].max_fee_per_gas) >= int(int(first.max_fee_per_gas) * 1.25)
    assert settlement.tx_hash == txs[1].tx_hash
    assert_one_anchor_agreeing(settle_chain, settlement)


def test_dropped_transaction_is_broadcast_again(
    settle_chain: Web3, node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain_config.deployment(settle_chain)
    settlement = anchoring.epoch_settle_start(actor=None, number=closed_epoch().number)
    if node.kind == "anvil":
        rpc(settle_chain, "evm_setAutomine", False)
        settlement = run(settlement, settle_chain, stop_after=State.BROADCAST)
        rpc(settle_chain, "anvil_dropTransaction", settlement.tx_hash)
        assert not anchor_steps.node_knows(settle_chain, settlement.tx_hash)
        rpc(settle_chain, "evm_setAutomine", True)
    else:
        real_broadcast = client.broadcast
        calls: list[int] = []

        def drop_first(web3: Web3, raw: bytes | str) -> str:
            calls.append(1)
            if len(calls) == 1:  # accepted, then lost by the node
                return Web3.keccak(hexstr=raw if isinstance(raw, str) else raw.hex()).to_0x_hex()
            return real_broadcast(web3, raw)

        monkeypatch.setattr(client, "broadcast", drop_first)
        settlement = run(settlement, settle_chain, stop_after=State.BROADCAST)
    stored = SettlementTx.objects.get(settlement=settlement)

    settlement = run(settlement, settle_chain)

    assert SettlementTx.objects.filter(settlement=settlement).count() == 1
    assert settlement.tx_hash == stored.tx_hash
    assert SettlementTx.objects.get(pk=stored.pk).broadcasts == 2
    assert_one_anchor_agreeing(settle_chain, settlement)


def test_embedded_chain_restart_replays_journal(settle_chain: Web3, node: Node) -> None:
    if node.kind != "embedded":
        pytest.skip("the anvil restart is test_anvil_restart_with_state")
    first = anchoring.epoch_settle_start(actor=None, number=closed_epoch().number)
    first = run(first, settle_chain, stop_after=State.BROADCAST)

    web3 = restart(node)  # a fresh EVM replays the journal: the anchor is there without being sent again
    assert client.get_receipt(web3, first.tx_hash) is not None
    first = run(first, web3)
    assert_one_anchor_agreeing(web3, first)

    second = anchoring.epoch_settle_start(actor=None, number=closed_epoch().number)
    second = run(second, web3, stop_after=State.SIGNED)
    web3 = restart(node)
    second = run(second, web3)
    assert_one_anchor_agreeing(web3, second)


def test_anvil_restart_with_state(tmp_path: Path, settings: Any) -> None:
    require_anvil()
    state = tmp_path / "anvil-state.json"
    settings.SETTLEMENT_STUCK_SECONDS = 60
    with anvil_node(state_path=state) as running:
        configure_external_chain(settings, running.url)
        chain_config.forget_connections()
        web3 = chain_config.w3()
        chain_config.deployment(web3)
        rpc(web3, "evm_setAutomine", False)
        settlement = anchoring.epoch_settle_start(actor=None, number=closed_epoch().number)
        settlement = run(settlement, web3, stop_after=State.BROADCAST)
    # the pending transaction did not survive the restart; the contracts did
    with anvil_node(state_path=state) as running:
        settings.CHAIN_RPC_URL = running.url
        chain_config.forget_connections()
        web3 = chain_config.w3()
        assert not anchor_steps.node_knows(web3, settlement.tx_hash)
        settlement = run(settlement, web3)
        assert settlement.tx_hash == SettlementTx.objects.get(settlement=settlement).tx_hash
        assert_one_anchor_agreeing(web3, settlement)
    chain_config.forget_connections()


def test_chain_not_answering_waits_with_backoff_then_anchors_once(
    settle_chain: Web3, monkeypatch: pytest.MonkeyPatch
) -> None:
    settlement = anchoring.epoch_settle_start(actor=None, number=closed_epoch().number)
    settlement = run(settlement, settle_chain, stop_after=State.SIGNED)
    real_broadcast = client.broadcast
    failures: list[int] = []

    def down_twice(web3: Web3, raw: bytes | str) -> str:
        if len(failures) < 2:
            failures.append(1)
            raise client.ChainUnavailable("the chain node did not answer: connection refused")
        return real_broadcast(web3, raw)

    monkeypatch.setattr(client, "broadcast", down_twice)
    seen: list[str] = []
    settlement = anchoring.settlement_run(
        settlement.pk, web3=settle_chain, timeout=60, poll=0.05, on_change=lambda s: seen.append(s.last_error)
    )
    assert any("did not answer" in error for error in seen)
    assert settlement.attempts == 2 and settlement.last_error == ""
    assert_one_anchor_agreeing(settle_chain, settlement)


def test_other_root_on_chain_stops_with_alarm(settle_chain: Web3) -> None:
    settlement = anchoring.epoch_settle_start(actor=None, number=closed_epoch().number)
    settlement = run(settlement, settle_chain, stop_after=State.BUILT)
    client.anchor(
        settle_chain,
        settlement.distributor,
        chain_config.anchor_key(settle_chain),
        epoch=settlement.epoch.number,
        root="0x" + "ab" * 32,
        data_hash="0x" + "00" * 32,
        total_cumulative=0,
    )

    settlement = run(settlement, settle_chain)

    assert settlement.state == State.FAILED and "not ours" in settlement.alarm
    assert settlement.epoch.status == Epoch.Status.FAILED
    assert not SettlementTx.objects.filter(settlement=settlement).exists()
    assert len(anchors(settle_chain, settlement)) == 1


def _settle_command(node: Node, number: int, settings: Any) -> Callable[[], subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        **chain_env(settings),
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": database_url_for_worker(),
        "CHAIN_RPC_URL": node.url or "",
        "CHAIN_JOURNAL_PATH": str(node.journal or ""),
        "SETTLEMENT_STUCK_SECONDS": "60",
    }
    command = [sys.executable, "manage.py", "settle_epoch", str(number), "--timeout", "60"]
    return lambda: subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_two_settle_commands_racing_anchor_once(settle_chain: Web3, node: Node, settings: Any) -> None:
    chain_config.deployment(settle_chain)  # both commands find the same contracts
    epoch = closed_epoch()
    start = _settle_command(node, epoch.number, settings)
    first, second = start(), start()
    outputs = [p.communicate(timeout=120)[0].decode() for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs

    settlement = Settlement.objects.get(epoch=epoch)
    assert SettlementTx.objects.filter(settlement=settlement).count() == 1
    assert_one_anchor_agreeing(restart(node), settlement)
