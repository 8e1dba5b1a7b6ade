"""Checks that apps to the right add to account actions (explicit registration from their ``ready()``, no signals).

``wallet_link_checks``: called with (user, checksummed address) before an address is linked; each returns None to
allow it or a sentence saying why not (settlement refuses an address it already paid to another account).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

WalletCheck = Callable[[Any, str], str | None]
wallet_link_checks: list[WalletCheck] = []


def on_wallet_link(check: WalletCheck) -> WalletCheck:
    if check not in wallet_link_checks:
        wallet_link_checks.append(check)
    return check


def wallet_link_refusal(user: Any, address: str) -> str | None:
    for check in wallet_link_checks:
        reason = check(user, address)
        if reason:
            return reason
    return None
