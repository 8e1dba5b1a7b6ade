"""The whole path a newcomer walks, in real Chromium: sign up, create a Datanet, upload a file by drag and drop
(watching the upload and the ingestion job), see per-line errors, review to quorum as two curators, publish a
snapshot and download its JSONL export."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from accounts.tests.factories import UserFactory
from core.models import Job
from datanets.models import Datanet, Record, Snapshot
from datanets.tests.browser.conftest import log_in, log_out, screenshot
from datanets.tests.factories import review_records

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.slow]

# Runs before any page script: keeps what the progress bars showed in sessionStorage, which survives the
# redirects and reloads the pages do, so the test can check what a user would have seen along the way.
WATCH_PROGRESS = """
window.addEventListener("DOMContentLoaded", () => {
  const keep = (key, value) => {
    const seen = JSON.parse(sessionStorage.getItem(key) || "[]");
    seen.push(value);
    sessionStorage.setItem(key, JSON.stringify(seen));
  };
  const bar = document.getElementById("upload-bar");
  if (bar) new MutationObserver(() => keep("uploadBar", bar.style.width)).observe(bar, {attributes: true});
  document.querySelectorAll("[data-job-url] .job-status").forEach(el => new MutationObserver(
    () => keep("jobStatus", el.textContent)).observe(el, {childList: true, characterData: true, subtree: true}));
});
"""

DROP_FILE = """(zone, [name, text]) => {
  const transfer = new DataTransfer();
  transfer.items.add(new File([text], name, {type: "application/x-ndjson"}));
  for (const type of ["dragenter", "dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true, cancelable: true}));
  }
}"""


def seen(page: Any, key: str) -> list[str]:
    return json.loads(page.evaluate(f"sessionStorage.getItem({key!r}) || '[]'"))


def percent(width: str) -> float:
    return float(width.rstrip("%") or 0)


def write_upload(tmp_path: Path) -> tuple[Path, list[dict[str, str]]]:
    """Six good records and, on line 4, a line that is not JSON."""
    records = review_records(6)
    lines = [json.dumps(r) for r in records]
    lines.insert(3, '{"text": "The courier left the parcel in the rain", "label": ')
    path = tmp_path / "support-reviews.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, records


def test_newcomer_signs_up_creates_uploads_reviews_publishes_and_downloads(
    new_page: Any, stopped_worker: Any, settings: Any, tmp_path: Path
) -> None:
    settings.UPLOAD_CHUNK_BYTES = 256  # several chunks, so the upload bar moves through the middle
    UserFactory(username="curator-ann")  # curators exist before the Datanet names them; password PASSWORD
    UserFactory(username="curator-ben")

    # --- sign up ------------------------------------------------------------------------------------------
    owner = new_page()
    owner.add_init_script(WATCH_PROGRESS)
    owner.goto("/")
    owner.get_by_role("link", name="Sign up").click()
    expect(owner.get_by_role("heading", name="Sign up")).to_be_visible()
    screenshot(owner, "01-signup")
    owner.get_by_label("Username").fill("newcomer")
    owner.get_by_label("Email").fill("newcomer@example.org")
    owner.locator("#id_password1").fill("a long pass phrase 42")
    owner.locator("#id_password2").fill("a long pass phrase 42")
    owner.get_by_role("button", name="Create account").click()
    expect(owner.get_by_test_id("whoami")).to_have_text("newcomer")
    expect(owner.get_by_role("status")).to_contain_text("Welcome, newcomer")
    screenshot(owner, "02-list-after-signup")

    # --- create a Datanet ---------------------------------------------------------------------------------
    owner.get_by_role("link", name="Create a Datanet").click()
    owner.locator("#id_title").fill("Support tickets")
    owner.locator("#id_domain").fill("support")
    owner.locator("#id_description").fill("Customer support conversations, labeled by sentiment.")
    owner.locator("#id_guidelines").fill("One ticket per record. No personal data.")
    owner.locator("#id_record_kind").select_option("labeled_text")
    owner.locator("#id_labels_text").fill("positive, negative")
    owner.locator("#id_approvals_needed").fill("2")
    owner.locator("#id_rejections_needed").fill("2")
    owner.locator("#id_curators_text").fill("curator-ann, curator-ben")
    screenshot(owner, "03-create-datanet")
    owner.get_by_role("button", name="Create Datanet").click()
    expect(owner.get_by_role("heading", name="Support tickets")).to_be_visible()
    expect(owner.get_by_role("status")).to_contain_text("Created Support tickets")
    expect(owner.get_by_text("Curators: curator-ann, curator-ben")).to_be_visible()
    datanet = Datanet.objects.get(title="Support tickets")
    assert (datanet.slug, datanet.labels, datanet.approvals_needed) == ("support-tickets", ["positive", "negative"], 2)
    screenshot(owner, "04-datanet-detail")

    # --- upload by drag and drop, holding one chunk back to see the bar part way ----------------------------
    path, records = write_upload(tmp_path)
    size = path.stat().st_size
    held: list[Any] = []

    def hold_middle_chunk(route: Any) -> None:
        offset = int(route.request.headers.get("upload-offset", "0"))
        if not held and offset >= size // 2:
            held.append(route)
        else:
            route.continue_()

    owner.route("**/api/uploads/*/chunk/", hold_middle_chunk)
    owner.get_by_role("link", name="Contribute").first.click()
    expect(owner.get_by_role("heading", name="Contribute to Support tickets")).to_be_visible()
    owner.wait_for_load_state("load")  # upload.js, at the end of the page, has set up the drop zone
    owner.locator("#dropzone").evaluate(DROP_FILE, [path.name, path.read_text(encoding="utf-8")])
    deadline = time.monotonic() + 20
    while not held and time.monotonic() < deadline:
        owner.wait_for_timeout(50)
    assert held, "the upload never reached the middle of the file"
    expect(owner.get_by_test_id("upload-text")).to_contain_text(re.compile(rf"Uploaded [\d,]+ of {size:,} bytes"))
    width = percent(owner.locator("#upload-bar").evaluate("el => el.style.width"))
    assert 0 < width < 100, f"upload bar at {width}% while half the file is sent"
    screenshot(owner, "05-upload-in-progress")
    held[0].continue_()

    # --- the ingestion job, watched on the contribution page --------------------------------------------------
    owner.wait_for_url(re.compile(r"/d/support-tickets/contributions/\d+/$"))
    widths = [percent(w) for w in seen(owner, "uploadBar")]
    assert widths[-1] == 100 and any(0 < w < 100 for w in widths), widths
    job_status = owner.get_by_test_id("job-status")
    expect(job_status).to_have_text("queued")  # the worker is stopped: the page shows the job waiting
    screenshot(owner, "06-contribution-queued")
    stopped_worker.start()
    expect(job_status).to_have_text(re.compile("succeeded|failed"), timeout=60_000)
    assert job_status.inner_text() == "succeeded", list(Job.objects.values_list("message", "error"))
    expect(owner.get_by_test_id("records-new")).to_have_text("6")  # the page reloaded with the results
    assert "succeeded" in seen(owner, "jobStatus"), "the page's poller never saw the job finish"
    expect(owner.get_by_test_id("records-invalid")).to_have_text("1")
    error_row = owner.get_by_test_id("row-errors").locator("tbody tr")
    expect(error_row).to_have_count(1)
    expect(error_row.locator("td").first).to_have_text("4")
    expect(error_row).to_contain_text("JSON")
    screenshot(owner, "07-contribution-done")
    assert Record.objects.filter(datanet=datanet, status=Record.Status.PENDING).count() == 6

    # --- curator 1: keyboard and buttons; one rejection with a reason ------------------------------------------
    ann = new_page()
    log_in(ann, "curator-ann")
    ann.goto("/d/support-tickets/review/")
    items = ann.get_by_test_id("review-item")
    expect(items).to_have_count(6)
    expect(items.nth(0)).to_contain_text(records[0]["text"])  # oldest first
    expect(items.nth(0)).to_have_class(re.compile(r"\bcurrent\b"))
    ann.keyboard.press("a")
    expect(items.nth(0).locator(".result")).to_have_text("Voted approve · waiting for more votes")
    expect(items.nth(1)).to_have_class(re.compile(r"\bcurrent\b"))
    ann.keyboard.press("a")
    expect(items.nth(1).locator(".result")).to_have_text("Voted approve · waiting for more votes")
    for i in (2, 3, 4):
        items.nth(i).get_by_role("button", name="Approve (a)").click()
        expect(items.nth(i).locator(".result")).to_have_text("Voted approve · waiting for more votes")
    last = items.nth(5)
    last.get_by_role("button", name="Reject (r)").click()
    expect(last.locator(".result")).to_have_text("Say why you reject it (type a reason first).")
    last.get_by_placeholder("Reason (needed to reject)").fill("Mentions a real order number.")
    last.get_by_role("button", name="Reject (r)").click()
    expect(last.locator(".result")).to_have_text("Voted reject · waiting for more votes")
    screenshot(ann, "08-review-curator1")

    # --- curator 2 reaches quorum -----------------------------------------------------------------------------
    ben = new_page()
    log_in(ben, "curator-ben")
    ben.goto("/d/support-tickets/review/")
    items = ben.get_by_test_id("review-item")
    expect(items).to_have_count(6)
    for i in (0, 1, 2):
        ben.keyboard.press("a")
        expect(items.nth(i).locator(".result")).to_have_text("Voted approve · record approved")
    for i in (3, 4):
        items.nth(i).get_by_role("button", name="Approve (a)").click()
        expect(items.nth(i).locator(".result")).to_have_text("Voted approve · record approved")
    items.nth(5).get_by_placeholder("Reason (needed to reject)").fill("Agree: personal data.")
    items.nth(5).get_by_role("button", name="Reject (r)").click()
    expect(items.nth(5).locator(".result")).to_have_text("Voted reject · record rejected")
    screenshot(ben, "09-review-curator2")
    ben.reload()
    expect(ben.get_by_test_id("queue-empty")).to_be_visible()
    ann.reload()
    expect(ann.get_by_test_id("queue-empty")).to_be_visible()  # resolved records leave every queue

    rejected = Record.objects.get(datanet=datanet, status=Record.Status.REJECTED)
    assert rejected.data == records[5]
    ben.goto(f"/d/support-tickets/records/{rejected.pk}/")
    expect(ben.get_by_test_id("record-status")).to_have_text("Rejected")
    expect(ben.get_by_text("“Mentions a real order number.”")).to_be_visible()
    expect(ben.get_by_text("“Agree: personal data.”")).to_be_visible()
    screenshot(ben, "10-record-rejected")
    ben.goto("/d/support-tickets/stats/")
    expect(ben.get_by_test_id("curator-stats").locator("tbody tr")).to_have_count(2)
    screenshot(ben, "11-stats")

    # --- the owner publishes and downloads the export ----------------------------------------------------------
    owner.goto("/d/support-tickets/")
    counts = owner.get_by_test_id("counts")
    expect(counts).to_contain_text("approved5")
    expect(counts).to_contain_text("rejected1")
    owner.get_by_role("button", name="Publish version 1").click()
    owner.wait_for_url("**/d/support-tickets/v/1/")
    expect(owner.get_by_role("status")).to_contain_text("Published version 1 with 5 records.")
    snapshot = Snapshot.objects.get(datanet=datanet, version=1)
    root = owner.get_by_test_id("snapshot-root")
    expect(root).to_have_text(snapshot.root)
    assert re.fullmatch(r"[0-9a-f]{64}", snapshot.root)
    owner.get_by_role("button", name="Build jsonl export").click()
    download_link = owner.get_by_test_id("download-jsonl")
    expect(download_link).to_be_visible(timeout=60_000)
    screenshot(owner, "12-snapshot-export-ready")
    with owner.expect_download() as download_info:
        download_link.click()
    download = download_info.value
    assert download.suggested_filename == "support-tickets-v1.jsonl"
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    rows = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert sorted((r["text"], r["label"]) for r in rows) == sorted((r["text"], r["label"]) for r in records[:5])
    assert {r["contributor"] for r in rows} == {"newcomer"}
    assert {r["split"] for r in rows} <= {"train", "validation"}
    assert {r["record_hash"] for r in rows} == set(
        Record.objects.filter(datanet=datanet, status=Record.Status.APPROVED).values_list("content_hash", flat=True)
    )
    log_out(owner)
