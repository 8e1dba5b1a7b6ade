"""A classifier's whole journey in real Chromium against the live server and a real Celery worker: a builder creates
a model, trains it from the model page, watches the run (progress bar, step counter, loss chart), opens the model
card and deploys the version; once the worker has built the attribution index, a consumer's playground call links
to the receipt ("Explain this output": top-k records, contributor shares, the receipt body); a consumer without
credit is refused and charged nothing."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from accounts.credits import credits_grant
from accounts.models import CreditAccount
from accounts.tests.factories import UserFactory
from attribution.models import AttributionIndex, Receipt
from conftest import wait_for
from core.canonical import content_hash
from core.models import Job
from datanets import services as datanet_services
from datanets.models import Contribution, Datanet, Record, Snapshot
from datanets.tests.browser.conftest import log_in, screenshot
from datanets.tests.factories import DatanetFactory
from models_factory.models import Inference, ModelVersion, TrainingRun
from models_factory.tests.browser.pages import (
    TRAIN_TIMEOUT_MS,
    WATCH_RUN,
    create_model,
    deploy,
    fill_train_form,
    percent,
    playground_run,
    seen,
)
from models_factory.tests.factories import sentiment_records

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.slow]


def two_contributor_snapshot(records: list[dict[str, Any]]) -> tuple[Datanet, Snapshot]:
    """Like ``snapshot_with``, with the records split between two contributors (each holding both labels), so
    receipts have shares to divide."""
    datanet = DatanetFactory(title="Drug reviews", slug="drug-reviews", labels=["positive", "negative"])
    people = [UserFactory(username="contrib-cara"), UserFactory(username="contrib-dan")]
    rows = []
    for who in (0, 1):
        contribution = Contribution.objects.create(
            datanet=datanet,
            contributor=people[who],
            source="paste",
            filename=f"seed-{who}.jsonl",
            file_sha256=content_hash([who, *records]),
            blob_name="-",
            size_bytes=1,
        )
        rows += [
            Record(
                datanet=datanet,
                contribution=contribution,
                contributor=people[who],
                line_no=i + 1,
                data=r,
                content_hash=content_hash(r),
                label=r["label"],
                status=Record.Status.APPROVED,
            )
            for i, r in enumerate(records)
            if (i // 2) % 2 == who
        ]
    Record.objects.bulk_create(rows)
    snapshot = datanet_services.snapshot_publish(actor=datanet.owner, datanet=datanet, validation_percent=10)
    return datanet, snapshot


def test_builder_trains_watches_deploys_and_consumers_infer_and_explain(new_page: Any, stopped_worker: Any) -> None:
    datanet, snapshot = two_contributor_snapshot(sentiment_records(24))
    UserFactory(username="builder-bo")
    ann, poor = UserFactory(username="consumer-ann"), UserFactory(username="consumer-zed")
    credits_grant(actor=None, user=ann, amount=10)

    # --- create the model and start a run from the model page -------------------------------------------------
    builder = new_page()
    builder.add_init_script(WATCH_RUN)
    log_in(builder, "builder-bo")
    create_model(builder, "Review sentiment", datanet)
    expect(builder.locator("h1 .pill")).to_have_text("Classifier")
    expect(builder.get_by_test_id("versions")).to_contain_text("No version yet")
    fill_train_form(
        builder,
        snapshot=str(snapshot.pk),
        method="head",
        base_model="minilm",
        epochs="2",
        batch_size="4",
        max_length="32",
        seed="0",
    )
    screenshot(builder, "mf-01-model-page-train-form")
    builder.get_by_role("button", name="Start training").click()
    builder.wait_for_url(re.compile(r"/models/runs/[0-9a-f-]+/$"))
    run = TrainingRun.objects.get()
    assert run.hyperparameters["epochs"] == 2 and run.hyperparameters["max_length"] == 32, run.hyperparameters

    # --- watch it: queued while no worker runs, then running to the end -----------------------------------------
    status = builder.get_by_test_id("run-status")
    expect(status).to_have_text("queued")
    expect(builder.locator("#loss-chart")).to_contain_text("no steps yet")
    screenshot(builder, "mf-02-run-queued")
    stopped_worker.start()
    expect(status).to_have_text(re.compile("succeeded|failed|cancelled"), timeout=TRAIN_TIMEOUT_MS)
    assert status.inner_text() == "succeeded", Job.objects.get(pk=run.job_id).error
    version_link = builder.get_by_test_id("version-link")
    expect(version_link).to_have_text("version 1")  # the page reloaded with the registered version
    run.refresh_from_db()
    total = run.total_steps
    assert total >= 4, total
    expect(builder.locator("#run-step")).to_have_text(f"{total} / {total}")
    expect(builder.locator("#run-bar")).to_have_attribute("style", re.compile(r"width:\s*100(\.0)?%"))
    polyline = builder.locator("#loss-chart polyline[data-series=raw]")
    expect(polyline).to_have_count(1)
    points = polyline.get_attribute("points").split()
    assert len(points) == total, points  # one point per step
    widths = [percent(w) for w in seen(builder, "bar")]
    assert widths[0] == 0 and widths[-1] == 100 and widths == sorted(widths), widths
    steps = seen(builder, "step")
    assert steps[0] == "–" and steps[-1] == f"{total} / {total}", steps  # "–" until the step count is known
    statuses = seen(builder, "status")
    assert statuses[0] == "queued" and statuses[-1] == "succeeded", statuses
    screenshot(builder, "mf-03-run-succeeded")

    # --- the model card ---------------------------------------------------------------------------------------
    version_link.click()
    builder.wait_for_url("**/models/review-sentiment/v/1/")
    v = ModelVersion.objects.get()
    lineage = builder.get_by_test_id("lineage")
    expect(lineage).to_contain_text(snapshot.root)
    expect(lineage).to_contain_text(f"sha256 {v.base_model_sha256[:17]}")
    expect(lineage).to_contain_text("head on cpu")
    expect(lineage).to_contain_text("epochs=2")
    accuracy = builder.locator("dl.counts div", has=builder.locator("dt", has_text="accuracy")).first.locator("dd")
    assert float(accuracy.inner_text()) == round(v.metrics["accuracy"], 4)
    expect(builder.locator("dl.counts div", has=builder.locator("dt", has_text="macro_f1"))).to_be_visible()
    confusion = builder.get_by_test_id("confusion")
    expect(confusion.locator("tbody tr")).to_have_count(2)
    cm = v.metrics["confusion_matrix"]
    matrix = cm["matrix"] if isinstance(cm, dict) else cm
    cells = [int(c) for c in confusion.locator("tbody td").all_inner_texts()]
    assert cells == [n for row in matrix for n in row] and sum(cells) > 0, cells
    expect(builder.locator("#loss-chart polyline[data-series=raw]")).to_have_count(1)
    expect(builder.locator(".pill.muted", has_text="not deployed")).to_be_visible()

    # --- deploy at 3 credits a call ---------------------------------------------------------------------------
    deploy(builder, 3)
    v.refresh_from_db()
    assert (v.deployed, v.price_credits) == (True, 3)
    screenshot(builder, "mf-04-version-deployed")
    builder.goto("/models/review-sentiment/")
    expect(builder.get_by_test_id("versions")).to_contain_text("yes · 3 cr")

    # --- a consumer with credit: label, probabilities, charged the price -------------------------------------------
    consumer = new_page()
    log_in(consumer, "consumer-ann")
    consumer.goto(v.get_absolute_url())
    balance = consumer.locator("#balance")
    expect(balance).to_have_text("10")
    expect(consumer.locator("#playground").locator("xpath=..")).to_contain_text('{"text": "…"}')
    out = playground_run(consumer, "works great and I feel much better")
    expect(out.locator("strong")).to_have_text(re.compile(r"^(positive|negative)$"))
    expect(out).to_contain_text(
        re.compile(r"positive \d+\.\d% · negative \d+\.\d%|negative \d+\.\d% · positive \d+\.\d%")
    )
    expect(out).to_contain_text("fee 3")
    expect(balance).to_have_text("7")
    assert CreditAccount.objects.get(user=ann).balance == 7

    # --- once the worker has built the attribution index, the playground links to the receipt ------------------------
    wait_for(
        lambda: AttributionIndex.objects.filter(version=v, status__in=["ready", "failed"]).first(),
        timeout=120,
        what="the attribution index to be built",
    )
    index = AttributionIndex.objects.get(version=v)
    assert index.status == "ready", index.error
    out = playground_run(consumer, "terrible headaches and nausea, awful")
    expect(balance).to_have_text("4")
    explain = out.get_by_test_id("explain-link")
    expect(explain).to_have_text("Explain this output")
    screenshot(consumer, "mf-05-playground-classifier")
    explain.click()
    consumer.wait_for_url(re.compile(r"/attribution/receipts/[0-9a-f]{64}/$"))
    receipt = Receipt.objects.get(pk=consumer.url.rstrip("/").rsplit("/", 1)[-1])
    assert receipt.inference == Inference.objects.filter(consumer=ann).latest("created_at")
    expect(consumer.get_by_role("heading", name="Explain this output")).to_be_visible()
    expect(consumer.get_by_test_id("receipt-id")).to_have_text(receipt.id)
    top_k = consumer.get_by_test_id("top-k").locator("li")
    assert top_k.count() == len(receipt.body["top_k"]) > 0
    expect(top_k.first).to_contain_text(re.compile(r"contrib-(cara|dan)"))
    expect(consumer.get_by_test_id("score-meaning")).to_contain_text("lowered this output's loss")
    shares = consumer.get_by_test_id("shares").locator(".barrow")
    assert shares.count() == len(receipt.body["shares"]) > 0
    percents = [float(t.rstrip("%")) for t in shares.locator("span:last-child").all_inner_texts()]
    assert abs(sum(percents) - 100) < 0.05, percents
    consumer.locator("summary", has_text="Receipt body").click()
    expect(consumer.locator("details pre")).to_contain_text(snapshot.root)
    screenshot(consumer, "mf-06-receipt")

    # --- a consumer without credit is refused with a clear message; nothing is charged --------------------------
    broke = new_page()
    log_in(broke, "consumer-zed")
    broke.goto(v.get_absolute_url())
    expect(broke.locator("#balance")).to_have_text("0")
    out = playground_run(broke, "very happy with it")
    expect(out.locator(".msg.error")).to_have_text(
        "This call costs 3 credits and your balance is 0. Buy credits first."
    )
    expect(broke.locator("#balance")).to_have_text("0")
    screenshot(broke, "mf-07-playground-no-credit")
    assert not Inference.objects.filter(consumer=poor).exists()
    assert CreditAccount.objects.filter(user=poor, balance__gt=0).count() == 0
    assert Inference.objects.filter(consumer=ann).count() == 2
