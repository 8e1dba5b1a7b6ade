"""Account pages in real Chromium: API tokens (created, shown once, revoked, then refused by the API), linking a
wallet by signing the page's challenge with a real key, and error pages that explain themselves."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests
from eth_account import Account
from eth_account.messages import encode_defunct
from playwright.sync_api import expect

from accounts.models import ApiToken
from accounts.tests.factories import UserFactory
from datanets.tests.browser.conftest import log_in, screenshot

pytestmark = pytest.mark.browser


def test_api_token_is_shown_once_and_refused_after_revoking(page: Any, live_server: Any) -> None:
    UserFactory(username="dana")
    log_in(page, "dana")
    page.get_by_role("link", name="API tokens").click()
    expect(page.get_by_role("heading", name="API tokens")).to_be_visible()
    page.get_by_placeholder("Token name, e.g. laptop").fill("laptop")
    page.get_by_label("Your password").fill("pass-word-123")
    page.get_by_role("button", name="Create token").click()
    shown = page.get_by_test_id("new-token")
    expect(shown).to_be_visible()
    token = shown.inner_text().strip()
    prefix = ApiToken.objects.get(user__username="dana", name="laptop").prefix
    assert token.startswith(prefix) and len(token) > len(prefix) + 16
    screenshot(page, "20-token-created")

    api = f"{live_server.url}/api/me/"
    ok = requests.get(api, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert ok.status_code == 200 and ok.json()["username"] == "dana"

    page.goto("/accounts/tokens/")  # shown only once
    expect(page.get_by_test_id("new-token")).to_have_count(0)
    row = page.locator("tbody tr", has_text="laptop")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(f"{prefix}…")
    expect(row).to_contain_text("active")
    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status")).to_contain_text(f"Token laptop ({prefix}…) is revoked")
    expect(page.locator("tbody tr", has_text="laptop")).to_contain_text("revoked")
    screenshot(page, "21-token-revoked")

    refused = requests.get(api, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert refused.status_code == 401
    detail = refused.json()["detail"]
    assert f"This API token ({prefix}…) was revoked" in detail and "Create a new one" in detail


def test_wallet_is_linked_by_signing_the_challenge_shown_on_the_page(page: Any) -> None:
    account = Account.from_key("0x" + "4c" * 32)
    UserFactory(username="erin")
    log_in(page, "erin")
    page.get_by_role("link", name="Wallet").click()
    expect(page.get_by_role("heading", name="Wallet")).to_be_visible()
    expect(page.get_by_text("Linked address: none yet")).to_be_visible()
    screenshot(page, "22-wallet")

    page.get_by_placeholder("0x… address to link").fill("0x1234")
    page.get_by_role("button", name="Get a message to sign").click()
    expect(page.get_by_role("status")).to_contain_text("is not an Ethereum address")

    page.get_by_placeholder("0x… address to link").fill(account.address.lower())
    page.get_by_role("button", name="Get a message to sign").click()
    message = page.locator("#challenge-message")
    expect(message).to_contain_text(f"Address: {account.address}")
    screenshot(page, "23-wallet-challenge")
    signature = Account.sign_message(encode_defunct(text=message.inner_text()), account.key).signature.hex()
    page.get_by_label("Signature").fill(signature if signature.startswith("0x") else "0x" + signature)
    page.get_by_label("Your password").fill("pass-word-123")
    page.get_by_role("button", name="Link address").click()
    expect(page.get_by_test_id("wallet-address")).to_have_text(account.address)
    expect(page.get_by_role("status")).to_contain_text(f"Wallet {account.address} is linked")


def test_error_pages_explain_themselves_without_a_stack_trace(page: Any) -> None:
    response = page.goto("/d/does-not-exist/")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_contain_text("404")
    expect(page.get_by_role("link", name="Back to Datanets")).to_be_visible()
    body = page.content()
    for leak in ("Traceback", "Page not found at", "URLconf", "settings.py", "DEBUG = True"):
        assert leak not in body, f"the error page shows {leak!r}"
    screenshot(page, "24-not-found")

    response = page.goto("/d/does-not-exist/review/")  # a login-only page for nobody: sent to log in, not an error
    assert response is not None and response.ok
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next="))

    api = page.request.get("/api/datanets/does-not-exist/")
    assert api.status == 404 and "detail" in api.json()
