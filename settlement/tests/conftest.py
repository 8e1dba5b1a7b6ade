"""Chain fixtures: the settlement chain tests run once on the embedded EVM and once on anvil.

anvil comes from ``npm ci`` in settlement/contracts. Without it the anvil half is skipped with the reason, unless
DATANETS_REQUIRE_ANVIL=1 (as CI sets), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from settlement.chain import client
from settlement.chain.anvil import anvil_node, find_anvil
from settlement.chain.embedded import DEV_KEYS

CONTRACTS_DIR = Path(__file__).resolve().parent.parent / "contracts"
NO_ANVIL = "anvil binary not found: run `npm ci` in settlement/contracts (CI installs @foundry-rs/anvil)"


@dataclass
class Chain:
    kind: str
    w3: Web3
    deployment: client.Deployment
    url: str | None = None

    @property
    def distributor(self) -> str:
        return self.deployment.distributor

    @property
    def token(self) -> str:
        return self.deployment.token


def require_anvil() -> None:
    if find_anvil() is None:
        if os.environ.get("DATANETS_REQUIRE_ANVIL") == "1":
            pytest.fail(NO_ANVIL)
        pytest.skip(NO_ANVIL)


def node_with(package: str) -> str:
    """The node binary when node and ``package`` (under settlement/contracts/node_modules) are both there."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the JavaScript cross-checks need it")
    if not (CONTRACTS_DIR / "node_modules" / package).is_dir():
        pytest.skip(f"{package} is not installed: run `npm ci` in settlement/contracts")
    return node


@pytest.fixture(scope="module", params=["embedded", "anvil"])
def chain(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    """Fresh contracts on a fresh chain, once per test module and chain kind; the deployer key holds every role."""
    if request.param == "embedded":
        w3 = client.connect(None, tmp_path_factory.mktemp("chain") / "journal.jsonl")
        yield Chain("embedded", w3, client.deploy_contracts(w3, DEV_KEYS[0], fund_distributor=10**27))
        return
    require_anvil()
    with anvil_node() as node:
        w3 = client.connect(node.url)
        yield Chain("anvil", w3, client.deploy_contracts(w3, DEV_KEYS[0], fund_distributor=10**27), node.url)


@dataclass
class Node:
    kind: str
    url: str | None = None
    journal: Path | None = None
    state_path: Path | None = None


@pytest.fixture(scope="module", params=["embedded", "anvil"])
def node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """A chain for the Django-level settlement tests: embedded (journaled) or anvil; contracts are deployed by the
    platform itself, once per test (each test's database starts empty, so it deploys fresh ones)."""
    if request.param == "embedded":
        yield Node("embedded", journal=tmp_path_factory.mktemp("chain") / "journal.jsonl")
        return
    require_anvil()
    with anvil_node() as running:
        yield Node("anvil", url=running.url)


def configure_external_chain(settings: Any, url: str) -> dict[str, str]:
    """What an operator does for a chain named by CHAIN_RPC_URL, where the platform never signs with the public dev
    keys on its own: deploy the contracts, then name them and the anchor and relay keys. Returns the variables, for
    a subprocess's environment."""
    web3 = client.connect(url)
    deployed = client.deploy_contracts(
        web3, DEV_KEYS[0], anchorer=client.address_of(DEV_KEYS[1]), fund_distributor=10**27
    )
    env = {
        "CHAIN_RPC_URL": url,
        "CHAIN_ANCHOR_KEY": DEV_KEYS[1],
        "CHAIN_RELAYER_KEY": DEV_KEYS[2],
        "CHAIN_DISTRIBUTOR_ADDRESS": deployed.distributor,
        "CHAIN_TOKEN_ADDRESS": deployed.token,
    }
    for name, value in env.items():
        setattr(settings, name, value)
    return env


def chain_env(settings: Any) -> dict[str, str]:
    """The chain variables now in effect, for a subprocess that must settle on the same chain and contracts."""
    names = (
        "CHAIN_RPC_URL",
        "CHAIN_ANCHOR_KEY",
        "CHAIN_RELAYER_KEY",
        "CHAIN_DISTRIBUTOR_ADDRESS",
        "CHAIN_TOKEN_ADDRESS",
    )
    return {name: str(getattr(settings, name, "") or "") for name in names}


@pytest.fixture
def settle_chain(node: Node, settings: Any) -> Iterator[Web3]:
    from settlement.chain import config as chain_config

    settings.CHAIN_RPC_URL = node.url or ""
    settings.CHAIN_JOURNAL_PATH = str(node.journal) if node.journal else ""
    if node.url:
        configure_external_chain(settings, node.url)  # fresh contracts per test: each test's epochs start at 1
    settings.SETTLEMENT_CONFIRMATIONS = 1
    settings.SETTLEMENT_STUCK_SECONDS = 60
    chain_config.forget_connections()
    web3 = chain_config.w3()
    yield web3
    if node.kind == "anvil":  # a failed test must not leave the shared node without automine
        web3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
    chain_config.forget_connections()


@pytest.fixture(autouse=True)
def _no_stray_worker(request: pytest.FixtureRequest) -> None:
    """Settlement tests settle in-process on their own chain. A worker left running by an earlier test would take
    the same queued settle job and run it against its own chain, racing the test, so it is stopped first (tests that
    want a worker ask for one, and it starts again when they do)."""
    if {"worker", "chain_worker", "stopped_worker"} & set(request.fixturenames):
        return
    if request.node.get_closest_marker("django_db") is None:
        return
    request.getfixturevalue("worker_process").stop()
