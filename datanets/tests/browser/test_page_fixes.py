"""Issue 15's browser bugs on the Datanet pages, each pinned in real Chromium: the review keyboard (a typed "r", an
unexplained Esc, skipped items that look voted, a double click that reads as a lost vote), hidden wallet buttons
that showed, sign-up's cramped inputs and misplaced password error, and an upload bar behind its own text."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from accounts.tests.factories import UserFactory
from core.canonical import content_hash
from datanets.models import Contribution, Record, Vote
from datanets.tests.browser.conftest import log_in, screenshot
from datanets.tests.factories import DatanetFactory, add_curators

pytestmark = pytest.mark.browser


def pending_records(n: int) -> tuple[Any, list[Record], Any]:
    datanet = DatanetFactory(title="Support tickets", slug="support-tickets")
    curator = add_curators(datanet, 2)[0]
    contributor = UserFactory()
    contribution = Contribution.objects.create(
        datanet=datanet,
        contributor=contributor,
        source="paste",
        filename="seed.jsonl",
        file_sha256="0" * 64,
        blob_name="-",
        size_bytes=1,
    )
    records = []
    for i in range(n):
        data = {"text": f"Ticket {i}: the courier left the parcel at the wrong door.", "label": "negative"}
        records.append(
            Record.objects.create(
                datanet=datanet,
                contribution=contribution,
                contributor=contributor,
                line_no=i + 1,
                data=data,
                content_hash=content_hash(data),
                label="negative",
            )
        )
    return datanet, records, curator


def test_review_keyboard_reject_skip_and_double_click(page: Any, transactional_db: None) -> None:
    datanet, records, curator = pending_records(3)
    log_in(page, curator.username)
    page.goto(f"/d/{datanet.slug}/review/")
    expect(page.get_by_test_id("review-keys")).to_contain_text("Enter rejects")
    expect(page.get_by_test_id("review-keys")).to_contain_text("Esc leaves the box")
    items = page.get_by_test_id("review-item")

    # r with no reason opens the box without typing itself into it; Enter then rejects with exactly the reason.
    page.keyboard.press("r")
    box = items.nth(0).locator(".reason")
    expect(box).to_be_focused()
    expect(box).to_have_value("")
    box.press_sequentially("Off-topic: not a review.")
    box.press("Enter")
    expect(items.nth(0).locator(".result")).to_have_text("Voted reject · waiting for more votes")
    assert Vote.objects.get(record=records[0]).reason == "Off-topic: not a review."

    # s skips: no vote, and the item says so and looks unlike a voted one.
    page.keyboard.press("s")
    expect(items.nth(1).locator(".result")).to_contain_text("Skipped: no vote sent")
    expect(items.nth(1)).to_have_class(re.compile(r"\bskipped\b"))
    expect(items.nth(0)).not_to_have_class(re.compile(r"\bskipped\b"))
    assert not Vote.objects.filter(record=records[1]).exists()
    voted = items.nth(0).evaluate("el => [getComputedStyle(el).opacity, getComputedStyle(el).borderStyle]")
    skipped = items.nth(1).evaluate("el => [getComputedStyle(el).opacity, getComputedStyle(el).borderStyle]")
    assert voted != skipped

    # A double click on Approve is one vote, and the page never says the vote was not needed.
    items.nth(2).get_by_role("button", name="Approve (a)").dblclick()
    expect(items.nth(2).locator(".result")).to_have_text("Voted approve · waiting for more votes")
    page.wait_for_timeout(300)
    expect(items.nth(2).locator(".result")).to_have_text("Voted approve · waiting for more votes")
    assert Vote.objects.filter(record=records[2]).count() == 1
    expect(items.nth(2).get_by_role("button", name="Approve (a)")).to_be_disabled()
    screenshot(page, "issue15-review-keyboard")


def test_wallet_buttons_meant_to_be_hidden_stay_hidden(page: Any, transactional_db: None) -> None:
    user = UserFactory()
    log_in(page, user.username)
    page.goto("/accounts/wallet/")
    page.get_by_placeholder("0x… address to link").fill("0x" + "ab" * 20)
    page.get_by_role("button", name="Get a message to sign").click()
    expect(page.locator("#challenge-message")).to_be_visible()
    # No injected wallet in this browser: the buttons that would use one are hidden and must not show.
    expect(page.locator("#use-injected")).to_be_hidden()
    expect(page.locator("#sign-injected")).to_be_hidden()


def test_sign_up_fields_are_full_width_and_a_common_password_error_sits_under_the_password(
    page: Any, transactional_db: None
) -> None:
    page.set_viewport_size({"width": 390, "height": 800})
    page.goto("/accounts/signup/")
    form_width = page.locator("form.form-stack").evaluate("el => el.clientWidth")
    for name in ("username", "password1", "password2"):
        width = page.locator(f"input[name={name}]").evaluate("el => el.getBoundingClientRect().width")
        assert width >= 0.95 * form_width, f"{name} is {width} px in a {form_width} px form"
    page.locator("input[name=username]").fill("newcomer")
    page.locator("input[name=password1]").fill("password123")
    page.locator("input[name=password2]").fill("password123")
    page.get_by_role("button", name="Create account").click()
    error = page.get_by_text("This password is too common.")
    expect(error).to_be_visible()
    # The error sits in the password's own block (Django puts it between the label and the field), not the
    # confirmation's.
    field_of_error = page.evaluate(
        """() => {
          const error = Array.from(document.querySelectorAll(".errorlist li"))
            .find(li => li.textContent.includes("too common"));
          const block = error.closest("form > div");
          return block.querySelector("input[type=password]").name;
        }"""
    )
    assert field_of_error == "password1"
    screenshot(page, "issue15-signup-phone")


def test_upload_bar_is_full_when_its_text_says_every_byte_is_sent(page: Any, transactional_db: None) -> None:
    datanet = DatanetFactory(title="Support tickets", slug="support-tickets", is_public=True)
    user = UserFactory()
    log_in(page, user.username)
    held: list[Any] = []
    page.route("**/api/uploads/*/complete/", lambda route: held.append(route))
    page.goto(f"/d/{datanet.slug}/upload/")
    text = "".join(f'{{"text": "ticket {i} about a late parcel", "label": "negative"}}\n' for i in range(200))
    page.locator("#file-input").set_input_files(
        files=[{"name": "tickets.jsonl", "mimeType": "application/x-ndjson", "buffer": text.encode()}]
    )
    expect(page.get_by_test_id("upload-text")).to_have_text(
        f"All {len(text.encode()):,} bytes sent; checking the file…"
    )
    filled = page.evaluate(
        """() => { const bar = document.getElementById("upload-bar");
                   return bar.getBoundingClientRect().width / bar.parentElement.getBoundingClientRect().width; }"""
    )
    assert filled > 0.99, f"the bar shows {filled:.0%} while the text says every byte is sent"
    screenshot(page, "issue15-upload-complete")
    for route in held:
        route.abort()
