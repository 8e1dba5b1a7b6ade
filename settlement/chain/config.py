"""Which chain the platform settles on, with which keys and contracts: the Django wiring around the chain client.

The settings are read from the environment once, at start-up, by config/settings.py through the typed readers in
config/env.py: ``CHAIN_RPC_URL`` (empty: the embedded chain, journaled in ``CHAIN_JOURNAL_PATH``, default
VAR_DIR/chain/journal.jsonl), ``CHAIN_ANCHOR_KEY`` and ``CHAIN_RELAYER_KEY`` (required off dev chains; dev chains use
the public dev keys), ``CHAIN_DISTRIBUTOR_ADDRESS``/``CHAIN_TOKEN_ADDRESS`` (production: existing contracts),
``SETTLEMENT_CONFIRMATIONS``, ``SETTLEMENT_STUCK_SECONDS``, ``TOKEN_UNITS_PER_CREDIT``. ``settings_check`` (called
from ``SettlementConfig.ready()``) refuses a malformed key or address before the first settlement needs it.
"""

from __future__ import annotations

import threading
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from eth_account import Account
from eth_utils import is_address
from web3 import Web3

from settlement.chain import client
from settlement.chain.embedded import DEV_KEYS
from settlement.models import ChainDeployment

# Roles among the public dev keys; the demo links DEV_KEYS[3:] to its users.
DEV_DEPLOYER_KEY, DEV_ANCHOR_KEY, DEV_RELAYER_KEY = DEV_KEYS[0], DEV_KEYS[1], DEV_KEYS[2]
DEV_FUNDING = 10**9 * 10**18

_connections: dict[tuple[str, str], Web3] = {}
_connections_lock = threading.Lock()


class ChainNotConfigured(RuntimeError):
    """A production chain without the keys or contract addresses it needs."""


KEY_SETTINGS = ("CHAIN_ANCHOR_KEY", "CHAIN_RELAYER_KEY")
ADDRESS_SETTINGS = ("CHAIN_DISTRIBUTOR_ADDRESS", "CHAIN_TOKEN_ADDRESS")


def settings_check() -> None:
    """Refuse malformed chain settings at start-up, naming the variable (the numbers are checked by config/env.py)."""
    for name in KEY_SETTINGS:
        value = str(getattr(settings, name, "") or "")
        if not value:
            continue
        try:
            Account.from_key(value)
        except Exception:
            raise ImproperlyConfigured(
                f"{name} is not a private key: use 0x followed by 64 hex digits (or leave it empty on a dev chain)."
            ) from None
    for name in ADDRESS_SETTINGS:
        value = str(getattr(settings, name, "") or "")
        if value and not is_address(value):
            raise ImproperlyConfigured(f"{name}={value!r} is not an address: use 0x followed by 40 hex digits.")


def token_units_per_credit() -> int:
    return int(settings.TOKEN_UNITS_PER_CREDIT)


def confirmations_needed() -> int:
    return max(1, int(settings.SETTLEMENT_CONFIRMATIONS))


def stuck_after_seconds() -> float:
    return float(settings.SETTLEMENT_STUCK_SECONDS)


def rpc_url() -> str:
    return str(settings.CHAIN_RPC_URL or "")


def journal_path() -> Path:
    return Path(settings.CHAIN_JOURNAL_PATH or Path(settings.VAR_DIR) / "chain" / "journal.jsonl")


def w3() -> Web3:
    """One connection per process and chain: the embedded chain replays its journal once, then follows it."""
    url = rpc_url()
    key = (url, "" if url else str(journal_path()))
    with _connections_lock:
        if key not in _connections:
            _connections[key] = client.connect(url or None, None if url else journal_path())
        return _connections[key]


def forget_connections() -> None:
    """Drop cached connections (an embedded chain then replays its journal again, as after a restart)."""
    with _connections_lock:
        _connections.clear()


def dev_keys_allowed() -> bool:
    """The public dev keys sign only on the embedded chain of a development run (DATANETS_DEV=1), never against a
    node named by CHAIN_RPC_URL: anyone may hold those keys, so a reachable node with them could be drained."""
    return bool(getattr(settings, "DEV", False)) and not rpc_url()


def _key(name: str, dev_key: str, web3: Web3) -> str:
    value = str(getattr(settings, name) or "")
    if value:
        return value
    if dev_keys_allowed():
        return dev_key
    raise ChainNotConfigured(
        f"{name} is not set: a chain named by CHAIN_RPC_URL needs its own key in the environment (the public dev "
        "keys sign only on the embedded chain with DATANETS_DEV=1)."
    )


def anchor_key(web3: Web3) -> str:
    return _key("CHAIN_ANCHOR_KEY", DEV_ANCHOR_KEY, web3)


def relayer_key(web3: Web3) -> str:
    return _key("CHAIN_RELAYER_KEY", DEV_RELAYER_KEY, web3)


def _has_code(web3: Web3, address: str) -> bool:
    return len(client.call(lambda: web3.eth.get_code(Web3.to_checksum_address(address)))) > 0


def deployment(web3: Web3 | None = None) -> ChainDeployment:
    """The contracts on the current chain: remembered in the database, deployed once on a dev chain."""
    web3 = web3 or w3()
    chain_id = int(client.call(lambda: web3.eth.chain_id))
    configured = str(settings.CHAIN_DISTRIBUTOR_ADDRESS or "")
    if configured:
        row, _ = ChainDeployment.objects.get_or_create(
            chain_id=chain_id,
            distributor=Web3.to_checksum_address(configured),
            defaults={"token": Web3.to_checksum_address(str(settings.CHAIN_TOKEN_ADDRESS or "") or configured)},
        )
        return row
    for row in ChainDeployment.objects.filter(chain_id=chain_id):
        if _has_code(web3, row.distributor):
            return row
    if not dev_keys_allowed():
        raise ChainNotConfigured(
            f"No distributor is known on chain {chain_id}: set CHAIN_DISTRIBUTOR_ADDRESS and CHAIN_TOKEN_ADDRESS "
            "(contracts are deployed automatically only on the embedded chain of a development run)."
        )
    with transaction.atomic():
        # A second process deploying at the same time waits here and then finds the first one's contracts.
        ChainDeployment.objects.select_for_update().filter(chain_id=chain_id).exists()
        for row in ChainDeployment.objects.filter(chain_id=chain_id):
            if _has_code(web3, row.distributor):
                return row
        deployed = client.deploy_contracts(
            web3, DEV_DEPLOYER_KEY, anchorer=client.address_of(DEV_ANCHOR_KEY), fund_distributor=DEV_FUNDING
        )
        return ChainDeployment.objects.create(
            chain_id=deployed.chain_id,
            token=deployed.token,
            distributor=deployed.distributor,
            deployer=deployed.deployer,
            block_number=deployed.block_number,
            is_dev=True,
        )


def fund_distributor_if_dev(web3: Web3, row: ChainDeployment, *, needed: int) -> None:
    """On dev chains the platform mints what the distributor lacks; production funds it from treasury."""
    if not row.is_dev:
        return
    balance = client.token_balance(web3, row.token, row.distributor)
    if balance < needed:
        client.mint(web3, row.token, DEV_DEPLOYER_KEY, to=row.distributor, amount=needed - balance + DEV_FUNDING)
