"""The embedded chain's journal: state survives a restart, in this process and in another one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from settlement.chain import client
from settlement.chain.anvil import anvil_node
from settlement.chain.embedded import DEV_KEYS, JournalError
from settlement.merkle import StandardMerkleTree
from settlement.tests.conftest import require_anvil

ROOT = Path(__file__).resolve().parents[2]
TOKEN = 10**18


def settle_one_epoch(w3: client.Web3) -> tuple[client.Deployment, StandardMerkleTree, str]:
    deployment = client.deploy_contracts(w3, DEV_KEYS[0], fund_distributor=100 * TOKEN)
    account = client.address_of(DEV_KEYS[5])
    tree = StandardMerkleTree.of(
        [(account, 3 * TOKEN), (client.address_of(DEV_KEYS[6]), TOKEN)], ["address", "uint256"]
    )
    client.anchor(
        w3,
        deployment.distributor,
        DEV_KEYS[0],
        epoch=1,
        root=tree.root,
        data_hash=b"\1" * 32,
        total_cumulative=4 * TOKEN,
    )
    client.claim(w3, deployment.distributor, DEV_KEYS[1], account=account, epoch=1, cumulative_amount=3 * TOKEN,
                 proof=tree.get_proof(0))  # fmt: skip
    return deployment, tree, account


def test_journal_replays_into_a_new_instance_and_a_new_process(tmp_path: Path) -> None:
    journal = tmp_path / "chain.jsonl"
    first = client.connect(None, journal)
    deployment, tree, account = settle_one_epoch(first)
    head = first.eth.block_number

    again = client.connect(None, journal)
    assert client.onchain_root(again, deployment.distributor, 1) == tree.root
    assert client.token_balance(again, deployment.token, account) == 3 * TOKEN
    assert again.eth.block_number == head
    assert again.eth.get_transaction_count(client.address_of(DEV_KEYS[0])) == first.eth.get_transaction_count(
        client.address_of(DEV_KEYS[0])
    )

    script = (
        "import json, sys; from pathlib import Path; from settlement.chain import client; "
        "w3 = client.connect(None, Path(sys.argv[1])); "
        "print(json.dumps([client.onchain_root(w3, sys.argv[2], 1), client.token_balance(w3, sys.argv[3], sys.argv[4])]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(journal), deployment.distributor, deployment.token, account],
        capture_output=True, text=True, check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120,
    )  # fmt: skip
    assert json.loads(out.stdout) == [tree.root, 3 * TOKEN]


def test_instances_sharing_a_journal_see_each_others_transactions(tmp_path: Path) -> None:
    journal = tmp_path / "chain.jsonl"
    web, worker = client.connect(None, journal), client.connect(None, journal)
    deployment, tree, _ = settle_one_epoch(worker)

    assert client.onchain_root(web, deployment.distributor, 1) == tree.root
    # the web instance anchors next; the nonce it reads already counts the worker's transactions
    client.anchor(
        web, deployment.distributor, DEV_KEYS[0], epoch=2, root=tree.root, data_hash=b"\2" * 32, total_cumulative=0
    )
    assert client.last_epoch(worker, deployment.distributor) == 2


def test_a_torn_last_line_is_ignored_and_a_foreign_line_is_refused(tmp_path: Path) -> None:
    journal = tmp_path / "chain.jsonl"
    deployment, _, account = settle_one_epoch(client.connect(None, journal))
    with journal.open("a") as f:
        f.write('{"raw":"0x02f8')  # a crash mid-write

    assert client.token_balance(client.connect(None, journal), deployment.token, account) == 3 * TOKEN

    journal.write_text(journal.read_text().rsplit("\n", 1)[0] + '\n{"raw":"0x00"}\n')
    with pytest.raises(JournalError, match="cannot replay"):
        client.connect(None, journal)


def test_anvil_state_survives_a_restart(tmp_path: Path) -> None:
    require_anvil()
    state = tmp_path / "anvil-state.json"
    with anvil_node(state_path=state) as node:
        deployment, tree, account = settle_one_epoch(client.connect(node.url))
    with anvil_node(state_path=state) as node:
        w3 = client.connect(node.url)
        assert client.onchain_root(w3, deployment.distributor, 1) == tree.root
        assert client.token_balance(w3, deployment.token, account) == 3 * TOKEN


def test_a_node_that_does_not_answer_is_unavailable() -> None:
    from settlement.chain.anvil import free_port

    w3 = client.connect(f"http://127.0.0.1:{free_port()}", timeout=1)
    with pytest.raises(client.ChainUnavailable):
        client.onchain_root(w3, "0x" + "11" * 20, 1)
    with pytest.raises(client.ChainUnavailable):
        client.broadcast(w3, b"\x02\xf8")
