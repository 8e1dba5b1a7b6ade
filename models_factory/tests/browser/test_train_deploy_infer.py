"""The Model Factory in real Chromium against the live server and a real Celery worker: a generative model trains
on the tiny base from the model page and generates text in the playground; a long run is cancelled from its page and
registers nothing. (A classifier's whole journey, from training to the receipt that explains an output, is in
attribution/tests/browser.)"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from accounts.credits import credits_grant
from accounts.tests.factories import UserFactory
from conftest import wait_for
from core.models import Job
from datanets.tests.browser.conftest import log_in, screenshot
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
from models_factory.tests.factories import qa_records, snapshot_with

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.slow]


def test_generative_model_on_qa_trains_on_tiny_base_deploys_and_generates(new_page: Any, worker: Any) -> None:
    datanet, _ = snapshot_with(qa_records(16), record_kind="qa", labels=[], title="City facts", slug="city-facts")
    gus = UserFactory(username="builder-gus")
    builder = new_page()
    log_in(builder, "builder-gus")
    create_model(builder, "City QA", datanet)
    expect(builder.locator("h1 .pill")).to_have_text("Generative (LoRA)")
    fill_train_form(builder, base_model="tiny", lora_r="8", epochs="6", batch_size="4", lr="0.01", max_length="64")
    builder.get_by_role("button", name="Start training").click()
    builder.wait_for_url(re.compile(r"/models/runs/[0-9a-f-]+/$"))
    run = TrainingRun.objects.get()
    assert (run.base_model, run.method) == ("tiny", "lora")
    status = builder.get_by_test_id("run-status")
    expect(status).to_have_text(re.compile("succeeded|failed|cancelled"), timeout=TRAIN_TIMEOUT_MS)
    assert status.inner_text() == "succeeded", Job.objects.get(pk=run.job_id).error
    expect(builder.locator("#loss-chart polyline[data-series=raw]")).to_have_count(1)
    screenshot(builder, "mf-08-generative-run")
    builder.get_by_test_id("version-link").click()
    builder.wait_for_url("**/models/city-qa/v/1/")
    expect(builder.get_by_test_id("lineage")).to_contain_text("lora")
    expect(builder.locator("dl.counts")).to_contain_text("perplexity")
    expect(builder.get_by_role("link", name=re.compile(r"download \(safetensors, PEFT adapter\)"))).to_be_visible()
    deploy(builder, 2)

    # The builder is a consumer of their own model too: with credit, the playground generates text.
    credits_grant(actor=None, user=gus, amount=5)
    builder.reload()
    expect(builder.locator("#balance")).to_have_text("5")
    expect(builder.locator("#playground").locator("xpath=..")).to_contain_text('{"prompt": "…"}')
    builder.get_by_label("Max tokens").fill("12")
    out = playground_run(builder, "What is the capital of region 3?")
    expect(out.locator(".msg.error")).to_have_count(0)
    generated = out.locator("pre").inner_text()
    assert generated.strip(), (out.inner_text(), Inference.objects.values("output", "tokens_in", "tokens_out").first())
    expect(out).to_contain_text(re.compile(r"\d+ tokens · \d+ ms · fee 2"))
    expect(builder.locator("#balance")).to_have_text("3")
    inference = Inference.objects.get()
    assert inference.output["text"] == generated and 0 < inference.tokens_out <= 12, inference.output
    screenshot(builder, "mf-09-playground-generative")


def test_cancel_a_long_run_from_its_page_registers_nothing(new_page: Any, worker: Any) -> None:
    datanet, _ = snapshot_with(qa_records(16), record_kind="qa", labels=[], title="Long run", slug="long-run")
    UserFactory(username="builder-cy")
    builder = new_page()
    builder.add_init_script(WATCH_RUN)
    log_in(builder, "builder-cy")
    create_model(builder, "Long QA", datanet)
    fill_train_form(builder, base_model="tiny", lora_r="4", epochs="100", batch_size="1", max_length="64")
    builder.get_by_role("button", name="Start training").click()
    builder.wait_for_url(re.compile(r"/models/runs/[0-9a-f-]+/$"))
    run = TrainingRun.objects.get()
    status = builder.get_by_test_id("run-status")
    expect(status).to_have_text("running", timeout=60_000)
    # Watched while it runs: the step counter climbs, the bar sits part way, the loss chart grows a point a step.
    step_counter, chart = builder.locator("#run-step"), builder.locator("#loss-chart polyline[data-series=raw]")
    expect(step_counter).to_have_text(re.compile(r"^[1-9]\d* / \d+$"), timeout=60_000)
    first_points = len(chart.get_attribute("points").split())

    def mid_run_steps() -> list[int]:
        steps = seen(builder, "step")  # "–" until the step count is known (tokenizing, embedding)
        return sorted({int(t.split(" / ")[0]) for t in steps if t[:1].isdigit() and not t.startswith("0 ")})

    wait_for(lambda: len(mid_run_steps()) >= 2, timeout=30, what="the step counter to move")
    step, total = (int(n) for n in step_counter.inner_text().split(" / "))
    assert 0 < step < total, (step, total)
    width = percent(builder.locator("#run-bar").evaluate("el => el.style.width"))
    assert 0 < width < 100, width
    assert len(chart.get_attribute("points").split()) > first_points
    expect(builder.locator("#run-eta")).to_have_text(re.compile(r"\d+ (s|min)"))
    screenshot(builder, "mf-10-run-before-cancel")
    builder.get_by_role("button", name="Cancel run").click()
    expect(builder.get_by_role("status")).to_contain_text("Cancelling")
    expect(status).to_have_text("cancelled", timeout=30_000)
    job = Job.objects.get(pk=run.job_id)
    assert job.status == Job.Status.CANCELLED and job.message == "Cancelled; nothing was registered", job.message
    builder.reload()
    expect(status).to_have_text("cancelled")
    expect(builder.get_by_role("button", name="Cancel run")).to_have_count(0)
    expect(builder.get_by_test_id("version-link")).to_have_count(0)
    screenshot(builder, "mf-11-run-cancelled")
    run.refresh_from_db()
    assert run.step < run.total_steps
    assert not ModelVersion.objects.exists()
    builder.goto("/models/long-qa/")
    expect(builder.get_by_test_id("versions")).to_contain_text("No version yet")
    expect(builder.locator(".pill.cancelled")).to_have_text("cancelled")
