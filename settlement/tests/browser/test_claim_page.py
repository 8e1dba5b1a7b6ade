"""The claim page in real Chromium (issue 15): "Claim with my browser wallet" stays hidden without an injected wallet
(``button{display:inline-block}`` used to beat ``[hidden]``), and a Relay button with nothing to claim looks
disabled. The chain is not the point here, so the page is given a claim status with a proof and nothing claimable.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from datanets.tests.browser.conftest import log_in, screenshot
from settlement.tests.factories import linked_user

pytestmark = pytest.mark.browser


def test_hidden_wallet_button_stays_hidden_and_a_disabled_relay_looks_disabled(
    page: Any, transactional_db: None, monkeypatch: Any
) -> None:
    alice = linked_user(username="contrib-alice")

    def fully_claimed(*, user: Any, web3: Any = None) -> dict[str, Any]:
        proof = {
            "epoch": 1,
            "root": "0x" + "ab" * 32,
            "distributor": "0x" + "cd" * 20,
            "calldata": "0x1234",
            "chain_id": 1337,
            "cumulative": str(50 * 10**18),
        }
        claimed = 50 * 10**18
        return {"address": user.wallet_address, "proof": proof, "claimed": claimed, "claimable": 0,
                "balance": claimed, "chain_error": ""}  # fmt: skip

    monkeypatch.setattr("settlement.views.claims.claim_status", fully_claimed)
    log_in(page, alice.username)
    page.goto("/rewards/claim/")
    expect(page.get_by_test_id("claimable")).to_have_text("0")
    expect(page.locator("#claim-injected")).to_be_hidden()
    relay = page.get_by_test_id("relay")
    expect(relay).to_be_disabled()
    disabled = relay.evaluate("el => [getComputedStyle(el).opacity, getComputedStyle(el).cursor]")
    enabled = page.get_by_role("link", name="Download proof (JSON)").evaluate(
        "el => [getComputedStyle(el).opacity, getComputedStyle(el).cursor]"
    )
    assert float(disabled[0]) < 0.7 and disabled[1] == "not-allowed", disabled
    assert enabled == ["1", "pointer"]
    screenshot(page, "issue15-claim-nothing-to-claim")
