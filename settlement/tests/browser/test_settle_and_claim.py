"""Issue 5's "Done when", in real Chromium against the live server and a real Celery worker on the embedded chain:
inference fees accrue and an owner funds the epoch pool, the admin closes the epoch in the browser, reviews the
allocation table and settles (the worker anchors the root; the page shows the confirmed transaction and its block),
a contributor with a linked wallet downloads the proof JSON, relays the claim and sees the token balance increase,
and ``manage.py verify_epoch`` agrees with the published dump."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from playwright.sync_api import expect

from accounts.models import CreditAccount
from accounts.tests.factories import UserFactory
from datanets.tests.browser.conftest import log_in, log_out, screenshot
from datanets.tests.factories import DatanetFactory
from settlement import rewards
from settlement.chain import config as chain_config
from settlement.models import Settlement
from settlement.tests.factories import linked_user, model_version, ppm_shares, receipt, records_with_values

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.slow]

SETTLE_TIMEOUT_MS = 120_000
TOKENS = 10**18


@pytest.fixture
def chain_worker(
    worker_process: Any, transactional_db: None, settings: Any, tmp_path: Path, monkeypatch: Any
) -> Iterator[Path]:
    """The embedded chain in a fresh journal, shared by the live server (this process) and a real worker started
    with the same journal; the worker is stopped afterwards so later tests get one with the usual environment."""
    journal = tmp_path / "chain" / "journal.jsonl"
    monkeypatch.setenv("CHAIN_JOURNAL_PATH", str(journal))
    monkeypatch.setenv("CHAIN_RPC_URL", "")
    settings.CHAIN_RPC_URL = ""
    settings.CHAIN_JOURNAL_PATH = str(journal)
    settings.SETTLEMENT_CONFIRMATIONS = 1
    settings.JOB_STALE_SECONDS = 3
    chain_config.forget_connections()
    worker_process.stop()
    worker_process.start(
        extra_env={"CHAIN_JOURNAL_PATH": str(journal), "CHAIN_RPC_URL": "", "SETTLEMENT_CONFIRMATIONS": "1"}
    )
    yield journal
    worker_process.stop()
    chain_config.forget_connections()


def tokens(page_text: str) -> float:
    return float(page_text.replace(",", "").strip() or 0)


def test_fees_accrue_admin_settles_contributor_claims_and_verify_agrees(
    chain_worker: Path, new_page: Any, live_server: Any, tmp_path: Path
) -> None:
    admin = UserFactory(username="admin-ada", is_staff=True)
    owner = UserFactory(username="owner-olga")
    alice = linked_user(username="contrib-alice")
    datanet = DatanetFactory(owner=owner, title="Support tickets", slug="support-tickets")
    CreditAccount.objects.create(user=owner, balance=100)
    version = model_version(datanet, builder=owner)  # the owner's model values the Datanet (splits its pool)
    records_with_values(version, {alice: [0.5, 0.25]})  # alice's records carry the epoch valuation
    for _ in range(5):  # five paid inferences, fully attributed to alice: 6 credits each are hers (60%)
        receipt(version, ppm_shares({alice: 1}), fee=10)
    number = rewards.epoch_open_get().number

    # The contributor sees her fees accruing in the open epoch once the admin counts the receipts.
    admin_page = new_page()
    log_in(admin_page, admin.username)
    admin_page.goto("/rewards/epochs/")
    admin_page.get_by_test_id("epochs").get_by_role("link", name=str(number)).click()
    expect(admin_page.get_by_test_id("epoch-status")).to_have_text("Open")
    admin_page.get_by_role("button", name="Count new receipts").click()
    expect(admin_page.get_by_role("status")).to_contain_text("Counted 5 new receipt(s)")

    contributor = new_page()
    log_in(contributor, alice.username)
    contributor.goto("/rewards/")
    # 5 fees of 10 credits, 60% to contributors, all hers: 30 tokens accruing
    expect(contributor.get_by_test_id("earnings-counts")).to_contain_text(re.compile(r"open epoch\s*30\b"))

    # The Datanet's owner funds the open epoch's pool from the rewards page.
    owner_page = new_page()
    log_in(owner_page, owner.username)
    owner_page.goto("/rewards/")
    owner_page.get_by_test_id("owned-datanets").get_by_role("link", name="Support tickets").click()
    owner_page.get_by_test_id("pool-amount").fill("20")
    owner_page.get_by_test_id("pool-fund").click()
    expect(owner_page.get_by_role("status")).to_contain_text(f"Added 20 credits (20 tokens) to epoch {number}")
    expect(owner_page.get_by_test_id("credit-balance")).to_have_text("80")
    expect(owner_page.get_by_test_id("open-pool")).to_have_text("20")

    # The admin closes the epoch, reviews the allocation table, and settles.
    admin_page.reload()
    admin_page.get_by_test_id("close").click()
    expect(admin_page.get_by_role("status")).to_contain_text(f"Epoch {number} closed with 5 receipts")
    expect(admin_page.get_by_test_id("epoch-status")).to_have_text("Closed")
    row = admin_page.get_by_test_id("allocations").get_by_role("row").filter(has_text=alice.username)
    expect(row).to_contain_text("50")  # 30 from fees + 20 from the pool
    expect(admin_page.get_by_test_id("allocations")).to_contain_text(version.ml_model.builder.username)
    screenshot(admin_page, "settlement-epoch-closed")
    admin_page.get_by_test_id("settle").click()
    expect(admin_page.get_by_role("status")).to_contain_text(f"Settling epoch {number}")
    # The page reloads itself while the worker builds, signs, broadcasts and waits for the receipt.
    expect(admin_page.get_by_test_id("settlement-state")).to_have_text("Confirmed", timeout=SETTLE_TIMEOUT_MS)
    settlement = Settlement.objects.get(epoch__number=number)
    assert settlement.tx_hash and settlement.block_number
    expect(admin_page.get_by_test_id("tx-hash")).to_have_text(settlement.tx_hash)
    expect(admin_page.get_by_test_id("settlement")).to_contain_text(
        f"{settlement.block_number} · gas {settlement.gas_used}"
    )
    expect(admin_page.get_by_test_id("epoch-status")).to_have_text("Settled")
    screenshot(admin_page, "settlement-epoch-confirmed")

    # The contributor opens the claim page, downloads the proof, relays the claim and sees her balance.
    contributor.goto("/rewards/")
    contributor.get_by_role("link", name="Claim tokens").click()
    expect(contributor.get_by_test_id("claimable")).to_have_text("50")
    expect(contributor.get_by_test_id("balance")).to_have_text("0")
    with contributor.expect_download() as download_info:
        contributor.get_by_role("link", name="Download proof (JSON)").click()
    download = download_info.value
    assert re.fullmatch(rf"datanets-proof-epoch-{number}\.json", download.suggested_filename)
    proof = json.loads(Path(download.path()).read_text())
    assert proof["epoch"] == number and proof["root"] == settlement.root
    assert proof["address"].lower() == alice.wallet_address.lower() and int(proof["cumulative"]) == 50 * TOKENS
    api_proof = contributor.request.get(f"/api/rewards/proofs/{number}/{alice.wallet_address}/").json()
    assert proof["proof"] == api_proof["proof"]

    contributor.get_by_test_id("relay").click()
    expect(contributor.get_by_role("status")).to_contain_text(f"Claimed 50 tokens to {alice.wallet_address}")
    expect(contributor.get_by_test_id("balance")).to_have_text("50")
    expect(contributor.get_by_test_id("claimable")).to_have_text("0")
    expect(contributor.get_by_test_id("relay")).to_be_disabled()
    screenshot(contributor, "settlement-claimed")
    log_out(contributor)

    # Anyone can check the epoch against the chain from the published dump.
    out = io.StringIO()
    call_command("verify_epoch", number, dump=f"{live_server.url}/rewards/epochs/{number}/dump.json", stdout=out)
    assert f"epoch {number}: OK" in out.getvalue()
    # ... and a dump whose figures were changed does not verify.
    dump = json.loads(contributor_dump(contributor, number))
    dump["tree"]["values"][0]["value"][1] = str(int(dump["tree"]["values"][0]["value"][1]) + 1)
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(dump))
    with pytest.raises(CommandError, match="does not verify"):
        call_command("verify_epoch", number, dump=str(tampered), stdout=io.StringIO(), stderr=io.StringIO())


def contributor_dump(page: Any, number: int) -> bytes:
    answer = page.request.get(f"/rewards/epochs/{number}/dump.json")
    assert answer.ok
    return answer.body()
