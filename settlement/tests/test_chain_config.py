"""Chain settings are read once at start-up: a malformed value stops the process with a message naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from conftest import ROOT
from settlement.chain import config as chain_config


def start(**env: str) -> subprocess.CompletedProcess[str]:
    """What a web process or worker does first: load the settings and every app's ready()."""
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SETTLEMENT_CONFIRMATIONS", "three", "SETTLEMENT_CONFIRMATIONS='three' is not an integer"),
        ("SETTLEMENT_CONFIRMATIONS", "0", "SETTLEMENT_CONFIRMATIONS=0 must be at least 1"),
        ("SETTLEMENT_STUCK_SECONDS", "soon", "SETTLEMENT_STUCK_SECONDS='soon' is not a number"),
        ("TOKEN_UNITS_PER_CREDIT", "1e18", "TOKEN_UNITS_PER_CREDIT='1e18' is not an integer"),
        ("CHAIN_ANCHOR_KEY", "0x1234", "CHAIN_ANCHOR_KEY is not a private key"),
        ("CHAIN_DISTRIBUTOR_ADDRESS", "0xnotanaddress", "CHAIN_DISTRIBUTOR_ADDRESS='0xnotanaddress' is not an address"),
    ],
)
def test_bad_chain_setting_fails_at_start(name: str, value: str, message: str) -> None:
    started = start(**{name: value})
    assert started.returncode != 0
    assert message in started.stderr, started.stderr[-2000:]


def test_good_chain_settings_start() -> None:
    started = start(
        SETTLEMENT_CONFIRMATIONS="3",
        TOKEN_UNITS_PER_CREDIT="1_000_000",
        CHAIN_RELAYER_KEY="0x" + "11" * 32,
        CHAIN_TOKEN_ADDRESS="0x" + "ab" * 20,
    )
    assert started.returncode == 0, started.stderr[-2000:]


def test_settings_check_names_the_bad_setting(settings: Any) -> None:
    settings.CHAIN_RELAYER_KEY = "not-a-key"
    with pytest.raises(ImproperlyConfigured, match="CHAIN_RELAYER_KEY is not a private key"):
        chain_config.settings_check()
    settings.CHAIN_RELAYER_KEY = ""
    settings.CHAIN_TOKEN_ADDRESS = "0x12"
    with pytest.raises(ImproperlyConfigured, match="CHAIN_TOKEN_ADDRESS='0x12' is not an address"):
        chain_config.settings_check()


def test_the_public_dev_keys_never_sign_against_a_named_node(settings: Any) -> None:
    settings.DEV = True
    settings.CHAIN_RPC_URL = "http://127.0.0.1:9"  # a node named by URL: never signed for with public keys
    settings.CHAIN_ANCHOR_KEY = settings.CHAIN_RELAYER_KEY = ""
    assert not chain_config.dev_keys_allowed()
    with pytest.raises(chain_config.ChainNotConfigured, match="CHAIN_ANCHOR_KEY is not set"):
        chain_config.anchor_key(None)  # type: ignore[arg-type]
    with pytest.raises(chain_config.ChainNotConfigured, match="CHAIN_RELAYER_KEY is not set"):
        chain_config.relayer_key(None)  # type: ignore[arg-type]


def test_the_public_dev_keys_need_the_development_flag_even_on_the_embedded_chain(settings: Any) -> None:
    settings.CHAIN_RPC_URL = ""
    settings.CHAIN_ANCHOR_KEY = ""
    settings.DEV = False
    assert not chain_config.dev_keys_allowed()
    with pytest.raises(chain_config.ChainNotConfigured, match="DATANETS_DEV=1"):
        chain_config.anchor_key(None)  # type: ignore[arg-type]
    settings.DEV = True
    assert chain_config.anchor_key(None) == chain_config.DEV_ANCHOR_KEY  # type: ignore[arg-type]


def test_configured_keys_are_used_wherever_the_chain_is(settings: Any) -> None:
    settings.CHAIN_RPC_URL = "http://127.0.0.1:9"
    settings.CHAIN_ANCHOR_KEY = "0x" + "11" * 32
    assert chain_config.anchor_key(None) == "0x" + "11" * 32  # type: ignore[arg-type]


def test_deploy_contracts_sets_up_a_named_chain_and_prints_the_env_lines() -> None:
    from settlement.chain import client
    from settlement.chain.anvil import anvil_node
    from settlement.chain.embedded import DEV_KEYS
    from settlement.tests.conftest import require_anvil

    require_anvil()
    with anvil_node() as node:
        env = {"CHAIN_RPC_URL": node.url, "CHAIN_ANCHOR_KEY": DEV_KEYS[1], "DEPLOYER_KEY": DEV_KEYS[0]}
        result = subprocess.run(
            [sys.executable, "manage.py", "deploy_contracts", "--fund", "1000"],
            cwd=ROOT,
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test", **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        lines = dict(line.split("=", 1) for line in result.stdout.splitlines() if line.startswith("CHAIN_"))
        web3 = client.connect(node.url)
        assert client.token_balance(web3, lines["CHAIN_TOKEN_ADDRESS"], lines["CHAIN_DISTRIBUTOR_ADDRESS"]) == 1000
        missing = subprocess.run(
            [sys.executable, "manage.py", "deploy_contracts"],
            cwd=ROOT,
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test", "CHAIN_RPC_URL": node.url},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert missing.returncode != 0 and "DEPLOYER_KEY is not set" in missing.stderr
