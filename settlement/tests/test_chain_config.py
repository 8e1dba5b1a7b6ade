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
