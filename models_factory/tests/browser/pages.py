"""What the Model Factory's browser tests do on its pages (create a model, fill the train form, deploy, run the
playground) and watch on a run page; shared with the attribution browser tests, which walk on to the receipt."""

from __future__ import annotations

import json
import re
from typing import Any

from playwright.sync_api import expect

from datanets.models import Datanet

TRAIN_TIMEOUT_MS = 150_000

# Runs before any page script: keeps what the run page showed (bar width, step counter, status) in sessionStorage,
# which survives the reload the page does when the version is registered, so the test can check what a user saw.
WATCH_RUN = """
window.addEventListener("DOMContentLoaded", () => {
  const keep = (key, value) => {
    const seen = JSON.parse(sessionStorage.getItem(key) || "[]");
    if (seen[seen.length - 1] !== value) seen.push(value);
    sessionStorage.setItem(key, JSON.stringify(seen));
  };
  const watch = (id, key, read, options) => {
    const el = document.getElementById(id);
    if (!el) return;
    keep(key, read(el));
    new MutationObserver(() => keep(key, read(el))).observe(el, options);
  };
  const text = {childList: true, characterData: true, subtree: true};
  watch("run-bar", "bar", el => el.style.width, {attributes: true});
  watch("run-step", "step", el => el.textContent, text);
  watch("run-status", "status", el => el.textContent, text);
});
"""


def seen(page: Any, key: str) -> list[str]:
    return json.loads(page.evaluate(f"sessionStorage.getItem({key!r}) || '[]'"))


def percent(width: str) -> float:
    return float(width.rstrip("%") or 0)


def create_model(page: Any, name: str, datanet: Datanet) -> None:
    page.goto("/models/")
    expect(page.get_by_role("heading", name="Models", exact=True)).to_be_visible()
    form = page.locator("form", has=page.get_by_role("button", name="Create model"))
    form.get_by_placeholder("Model name").fill(name)
    form.locator("select[name=datanet]").select_option(datanet.slug)
    form.get_by_role("button", name="Create model").click()
    expect(page.get_by_role("heading", name=re.compile(re.escape(name)))).to_be_visible()


def fill_train_form(page: Any, **fields: str) -> None:
    form = page.locator("#train-form")
    for name, value in fields.items():
        field = form.locator(f"[name={name}]")
        if field.evaluate("el => el.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)


def deploy(page: Any, price: int) -> None:
    page.get_by_label("Price per call (credits)").fill(str(price))
    page.get_by_role("button", name="Deploy", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Deployed.")
    expect(page.get_by_test_id("deployed")).to_have_text(f"deployed · {price} credits/call")


def playground_run(page: Any, text: str) -> Any:
    page.locator("#playground textarea[name=input]").fill(text)
    page.locator("#playground").get_by_role("button", name="Run").click()
    out = page.get_by_test_id("playground-out")
    expect(out).not_to_have_text(re.compile(r"^(Running…)?$"), timeout=60_000)
    return out
