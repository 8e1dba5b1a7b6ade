"""The page survey: every page of the product, as every role (logged out, contributor, curator, owner, consumer,
admin), at desktop (1280 px) and phone (390 px) widths, in real Chromium against the live server on the demo data.

It fails, listing every finding at once, on: horizontal overflow, an element with ``hidden`` that is displayed, a
disabled control that looks like an enabled one, a 5xx answer, a console error, a page whose document took more
than a second on the server, text outside the viewport, text too small to read, and a door that leads a signed-in
person to the Django admin's login instead of a page of ours. Each page's screenshot is saved under
``var/screenshots/survey/`` (CI keeps the folder as an artifact).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from accounts.models import User
from attribution.models import AttributionIndex, Citation, Flag, Receipt, RecordValuation
from core.canonical import canonical_json, content_hash
from core.models import Job
from datanets.models import Contribution, Datanet, Record
from datanets.tests.browser.conftest import CHROMIUM_ARGS, SCREENSHOTS  # noqa: F401
from demo.loader import DEMO_MODEL, DEMO_PASSWORD, DEMO_SLUG, QA_SLUG, load_demo
from models_factory.models import Inference, MLModel, ModelVersion, TrainingRun
from settlement import epochs, rewards

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WIDTHS = {"desktop": 1280, "phone": 390}
ROLES = ["anonymous", "alice", "curator1", "owner", "consumer", "admin"]
SERVER_BUDGET_MS = 1000
OUT = SCREENSHOTS / "survey"

# Runs in the page: what a person would see is wrong. Returns a list of findings (strings).
CHECKS_JS = r"""
() => {
  const found = [];
  const W = document.documentElement.clientWidth;
  const name = el => {
    let s = el.tagName.toLowerCase();
    if (el.id) s += "#" + el.id;
    if (el.dataset && el.dataset.testid) s += "[data-testid=" + el.dataset.testid + "]";
    const t = (el.textContent || el.value || "").trim().replace(/\s+/g, " ").slice(0, 40);
    return t ? s + " '" + t + "'" : s;
  };
  if (document.documentElement.scrollWidth > window.innerWidth) {
    // Name the widest elements so the finding says where to look.
    const wide = Array.from(document.body.querySelectorAll("*"))
      .filter(el => el.getBoundingClientRect().right > window.innerWidth + 1)
      .filter(el => !(el.parentElement && el.parentElement.getBoundingClientRect().right > window.innerWidth + 1))
      .slice(0, 3).map(name);
    found.push("horizontal overflow: content " + document.documentElement.scrollWidth + " px wide in a "
      + window.innerWidth + " px viewport (" + wide.join("; ") + ")");
  }
  for (const el of document.querySelectorAll("[hidden]")) {
    if (getComputedStyle(el).display !== "none") found.push("hidden but displayed: " + name(el));
  }
  const controls = document.querySelectorAll("button:disabled, input:disabled, select:disabled, textarea:disabled");
  for (const el of controls) {
    if (el.type === "hidden" || !el.getClientRects().length) continue;
    const twin = el.cloneNode(true);
    twin.disabled = false; twin.removeAttribute("id");
    twin.style.position = "absolute"; twin.style.visibility = "hidden";
    el.after(twin);
    const a = getComputedStyle(el), b = getComputedStyle(twin);
    const same = ["opacity", "cursor", "background-color", "color", "filter"].every(p => a[p] === b[p]);
    twin.remove();
    if (same) found.push("disabled but looks enabled: " + name(el));
  }
  // Text a person cannot reach: outside the viewport after every clipping ancestor (a scroll box clips too, and
  // what it hides is reachable by scrolling it).
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const outside = new Set();
  let node;
  while ((node = walker.nextNode())) {
    if (!node.textContent.trim()) continue;
    const el = node.parentElement;
    if (!el || el.closest("script, style, template, noscript, title")) continue;
    const range = document.createRange(); range.selectNodeContents(node);
    for (const r of range.getClientRects()) {
      if (!r.width || !r.height) continue;
      let left = r.left, right = r.right;
      for (let p = el; p && p !== document.documentElement; p = p.parentElement) {
        const s = getComputedStyle(p);
        if (s.overflowX !== "visible") {
          const c = p.getBoundingClientRect(); left = Math.max(left, c.left); right = Math.min(right, c.right);
        }
      }
      if (right - left > 1 && (right > W + 1 || left < -1)) { outside.add(name(el)); break; }
    }
  }
  for (const n of Array.from(outside).slice(0, 5)) found.push("text outside the viewport: " + n);
  const tiny = new Set();
  for (const el of document.querySelectorAll("svg text")) {
    const h = el.getBoundingClientRect().height;
    if (h && h < 9) tiny.add(name(el) + " (" + h.toFixed(1) + " px)");
  }
  for (const el of document.body.querySelectorAll("*")) {
    if (el.closest("svg") || !el.getClientRects().length) continue;
    const own = Array.from(el.childNodes).some(n => n.nodeType === 3 && n.textContent.trim());
    if (own && parseFloat(getComputedStyle(el).fontSize) < 10) tiny.add(name(el));
  }
  for (const n of Array.from(tiny).slice(0, 3)) found.push("text too small to read: " + n);
  return found;
}
"""


@dataclass
class Survey:
    findings: list[str] = field(default_factory=list)
    visits: int = 0
    slowest: tuple[float, str] = (0.0, "")

    def add(self, where: str, what: str) -> None:
        self.findings.append(f"{where}: {what}")


def demo_world() -> dict[str, str]:
    """The demo (no training) plus what the worker would have added after training: a registered and deployed
    version with metrics, its attribution index, a receipt citing real reviews, valuations and flags; epoch 1 closed
    with its allocations and epoch 2 open. Returns the addresses of the pages that hold them."""
    load_demo(train_model=False)
    owner, consumer = User.objects.get(username="owner"), User.objects.get(username="consumer")
    datanet = Datanet.objects.get(slug=DEMO_SLUG)
    snapshot = datanet.snapshots.get(version=1)
    model = MLModel.objects.create(
        name=DEMO_MODEL, slug="drug-review-sentiment", kind=MLModel.Kind.CLASSIFIER, datanet=datanet, builder=owner
    )
    job = Job.objects.create(
        kind="train", status=Job.Status.SUCCEEDED, progress_done=105, progress_total=105, message="Registered v1."
    )
    run = TrainingRun.objects.create(
        ml_model=model,
        snapshot=snapshot,
        base_model="minilm",
        method="head",
        job=job,
        created_by=owner,
        step=105,
        total_steps=105,
        epoch=3,
        examples_per_s=180.5,
        loss_history=[[i, 1.1 - i / 150] for i in range(0, 106, 5)],
        hyperparameters={"epochs": 3, "batch_size": 16, "lr": 0.001, "max_length": 128, "seed": 0},
    )
    labels = datanet.labels
    version = ModelVersion.objects.create(
        ml_model=model,
        version=1,
        run=run,
        snapshot=snapshot,
        snapshot_root=snapshot.root,
        base_model_id="sentence-transformers/all-MiniLM-L6-v2",
        base_model_sha256=hashlib.sha256(b"minilm").hexdigest(),
        method="head",
        hyperparameters=run.hyperparameters,
        seeds={"torch": 0, "split": 0, "shuffle": 0},
        library_versions={"torch": "2.5.1+cpu", "transformers": "4.46.3", "safetensors": "0.4.5", "numpy": "2.1.3"},
        code_revision=hashlib.sha1(b"rev").hexdigest(),
        device="cpu",
        metrics={
            "accuracy": 0.8125,
            "macro_f1": 0.7741,
            "loss": 0.5123,
            "confusion_matrix": {"labels": labels, "matrix": [[14, 2, 3], [3, 5, 2], [1, 1, 25]]},
        },
        artifact_location="-",
        artifact_size_bytes=18_000,
        deployed=True,
        price_credits=2,
    )
    AttributionIndex.objects.create(
        version=version, method="gradient", status=AttributionIndex.Status.READY, n_records=500
    )
    Job.objects.create(
        kind="valuation", target_id=str(version.pk), status=Job.Status.SUCCEEDED, message="Valued 500 records."
    )
    approved = list(Record.objects.filter(datanet=datanet, status=Record.Status.APPROVED).order_by("-id")[:40])
    for i, record in enumerate(approved):
        RecordValuation.objects.create(version=version, record=record, knn_shapley=0.002 - i * 0.0001)
    for record in approved[-3:]:
        Flag.objects.create(
            record=record,
            version=version,
            reason=Flag.Reason.LABEL,
            severity=0.93,
            summary=f"Labelled '{record.label}', but a model trained without this record gives 'negative' 0.95.",
            evidence={"knn_shapley": -0.0018, "rank_of_n": [1, 500], "label": record.label},
        )
    longest = sorted(approved, key=lambda r: -len(r.data["text"]))[:5]
    inference = Inference.objects.create(
        version=version,
        consumer=consumer,
        input={"text": longest[0].data["text"]},
        input_hash=content_hash({"text": longest[0].data["text"]}),
        output={"label": "positive", "probabilities": {"negative": 0.1, "neutral": 0.2, "positive": 0.7}},
        fee=2,
        latency_ms=12.0,
    )
    top = [
        {"record": r.pk, "record_hash": r.content_hash, "contributor": r.contributor.username, "score": 0.5 - i / 10}
        for i, r in enumerate(longest)
    ]
    body = {
        "format": "datanets-receipt-1",
        "inference": str(inference.pk),
        "model": model.slug,
        "model_version": 1,
        "snapshot_root": snapshot.root,
        "method": "gradient",
        "input_hash": inference.input_hash,
        "output_hash": content_hash(inference.output),
        "top_k": top,
        "shares": [{"contributor": "alice", "share_ppm": 600_000}, {"contributor": "bob", "share_ppm": 400_000}],
        "uncredited": [],
        "fee": 2,
    }
    receipt = Receipt.objects.create(
        id=hashlib.sha256(canonical_json(body)).hexdigest(),
        inference=inference,
        version=version,
        method="gradient",
        body=body,
        fee=2,
    )
    for i, r in enumerate(longest):
        Citation.objects.create(
            receipt=receipt, record=r, contributor=r.contributor, rank=i, score=top[i]["score"], credit_ppm=200_000
        )
    rewards.receipts_accrue()
    closed = rewards.epoch_open_get().number
    epochs.epoch_close(actor=User.objects.get(username="admin"), number=closed)
    contribution = Contribution.objects.filter(datanet=datanet, contributor__username="alice").first()
    pending = Record.objects.filter(datanet=datanet, status=Record.Status.PENDING).first()
    qa_snapshot = Datanet.objects.get(slug=QA_SLUG).snapshots.get(version=1)
    return {
        "datanets": "/",
        "datanet": f"/d/{DEMO_SLUG}/",
        "qa datanet": f"/d/{QA_SLUG}/",
        "new datanet": "/new/",
        "edit datanet": f"/d/{DEMO_SLUG}/edit/",
        "contribute": f"/d/{DEMO_SLUG}/upload/",
        "contribution": contribution.get_absolute_url(),
        "review queue": f"/d/{DEMO_SLUG}/review/",
        "record": pending.get_absolute_url(),
        "stats": f"/d/{DEMO_SLUG}/stats/",
        "snapshot": snapshot.get_absolute_url(),
        "qa snapshot": qa_snapshot.get_absolute_url(),
        "my records": "/me/records/",
        "models": "/models/",
        "model": model.get_absolute_url(),
        "run": run.get_absolute_url(),
        "version": version.get_absolute_url(),
        "receipt": f"/attribution/receipts/{receipt.pk}/",
        "flags": f"/attribution/flags/{DEMO_SLUG}/",
        "contributor": "/attribution/contributors/alice/",
        "rewards": "/rewards/",
        "claim": "/rewards/claim/",
        "datanet rewards": f"/rewards/datanets/{DEMO_SLUG}/",
        "epochs": "/rewards/epochs/",
        "closed epoch": f"/rewards/epochs/{closed}/",
        "open epoch": f"/rewards/epochs/{closed + 1}/",
        "explorer": "/explorer/",
        "explorer receipt": f"/explorer/receipts/{receipt.pk}/",
        "explorer search": f"/explorer/search/?q={snapshot.root}",
        "webhooks": "/webhooks/",
        "tokens": "/accounts/tokens/",
        "wallet": "/accounts/wallet/",
        "password": "/accounts/password/",
        "login": "/accounts/login/",
        "signup": "/accounts/signup/",
        "not found": "/d/no-such-datanet/",
        "post only": f"/d/{DEMO_SLUG}/publish/",
    }


def log_in(page: Any, username: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_test_id("whoami").wait_for()


def visit(page: Any, survey: Survey, where: str, path: str, console: list[str]) -> None:
    from playwright.sync_api import Error as PlaywrightError

    console.clear()
    try:
        response = page.goto(path, wait_until="load")
    except PlaywrightError as exc:  # an empty error answer: Chromium shows its own blank error page
        survey.add(where, f"no page of ours to show: {str(exc).splitlines()[0]}")
        return
    page.wait_for_timeout(150)  # let page scripts draw charts and flip hidden flags
    survey.visits += 1
    status = response.status if response else 0
    if status >= 500:
        survey.add(where, f"server error {status}")
    timing = response.request.timing if response else {}
    server_ms = timing.get("responseStart", 0) - timing.get("requestStart", 0)
    if server_ms > SERVER_BUDGET_MS:  # once more: a single slow answer on a loaded machine is not a slow page
        response = page.goto(path, wait_until="load")
        timing = response.request.timing
        server_ms = min(server_ms, timing.get("responseStart", 0) - timing.get("requestStart", 0))
        if server_ms > SERVER_BUDGET_MS:
            survey.add(where, f"the document took {server_ms:.0f} ms on the server (budget {SERVER_BUDGET_MS} ms)")
    if server_ms > survey.slowest[0]:
        survey.slowest = (server_ms, where)
    if page.url.split("?")[0].endswith("/admin/login/") and not path.startswith("/admin/"):
        survey.add(where, "a door of ours leads to the Django admin login")
    for message in console:
        survey.add(where, f"console error: {message}")
    for finding in page.evaluate(CHECKS_JS):
        survey.add(where, finding)
    OUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUT / f"{re.sub(r'[^a-z0-9]+', '-', where.lower()).strip('-')}.png"), full_page=True)


def test_every_page_as_every_role_at_desktop_and_phone_width(
    browser: Any, live_server: Any, transactional_db: None, settings: Any
) -> None:
    pages = demo_world()
    survey = Survey()
    for role in ROLES:
        for width_name, width in WIDTHS.items():
            context = browser.new_context(base_url=live_server.url, viewport={"width": width, "height": 900})
            context.set_default_timeout(20_000)
            page = context.new_page()
            console: list[str] = []

            def on_console(msg: Any, console: list[str] = console, page: Any = page) -> None:
                # A page that answers 4xx on purpose (a door this role may not open) logs its own status; that
                # is the answer, not a broken page. Anything else the console calls an error is one.
                text = msg.text
                if msg.type == "error" and not re.match(r"Failed to load resource: .* status of 4\d\d", text):
                    console.append(text)
                elif msg.type == "error" and msg.location.get("url", "") != page.url:
                    console.append(f"{text} ({msg.location.get('url', '')})")

            page.on("console", on_console)
            page.on("pageerror", lambda exc, console=console: console.append(f"uncaught: {exc}"))
            if role != "anonymous":
                log_in(page, role)
            for name, path in pages.items():
                visit(page, survey, f"{role} {width_name} {name}", path, console)
            context.close()
    print(f"\npage survey: {survey.visits} visits, slowest {survey.slowest[0]:.0f} ms ({survey.slowest[1]})")
    assert not survey.findings, f"{len(survey.findings)} findings:\n" + "\n".join(survey.findings)
