"""Issue 15's layout bugs, each pinned in real Chromium: the model version page overflowed a phone (751 px in 390),
the receipt page ran to 7,700 px because ``.clamp`` on a ``<td>`` clamped nothing, and the contributor valuation
chart drew its labels about 6 px tall."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from accounts.tests.factories import UserFactory
from attribution.models import Receipt, RecordValuation
from core.canonical import canonical_json, content_hash
from datanets.tests.browser.conftest import screenshot
from models_factory.models import Inference
from settlement.tests.factories import model_version, records_with_values

pytestmark = pytest.mark.browser

LONG = (
    "I have taken this medicine for three years for migraines, and the first months were hard: nausea, a dry "
    "mouth, and a tiredness that made the afternoons disappear. My doctor lowered the dose twice before it settled. "
) * 6


def overflow(page: Any) -> int:
    return page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")


def test_model_version_page_fits_a_phone(page: Any, transactional_db: None) -> None:
    version = model_version()
    version.base_model_id = "sentence-transformers/all-MiniLM-L6-v2"
    version.code_revision = hashlib.sha1(b"rev").hexdigest()
    version.hyperparameters = {"epochs": 3, "batch_size": 16, "lr": 0.001, "max_length": 128, "seed": 0}
    version.library_versions = {"torch": "2.5.1+cpu", "transformers": "4.46.3", "safetensors": "0.4.5"}
    version.metrics = {"accuracy": 0.81, "confusion_matrix": {"labels": ["a", "b"], "matrix": [[5, 1], [2, 7]]}}
    version.save()
    page.set_viewport_size({"width": 390, "height": 800})
    page.goto(version.get_absolute_url())
    assert overflow(page) <= 0, f"the page is {overflow(page)} px wider than the phone"
    screenshot(page, "issue15-version-phone")


def test_receipt_page_clamps_long_record_texts(page: Any, transactional_db: None) -> None:
    version = model_version()
    alice, bob = UserFactory(username="alice-r"), UserFactory(username="bob-r")
    records = records_with_values(version, {alice: [0.1, 0.2, 0.3], bob: [0.1, 0.2]})
    for record in records:
        record.data = {"text": LONG, "label": "positive"}
        record.save(update_fields=["data"])
    inference = Inference.objects.create(
        version=version,
        consumer=UserFactory(),
        input={"text": LONG},
        input_hash=content_hash({"text": LONG}),
        output={"label": "positive", "probabilities": {"negative": 0.2, "positive": 0.8}},
        fee=1,
        latency_ms=5.0,
    )
    body = {
        "model": version.ml_model.slug,
        "model_version": 1,
        "snapshot_root": version.snapshot_root,
        "method": "gradient",
        "top_k": [
            {"record": r.pk, "contributor": r.contributor.username, "score": 0.5 - i / 10}
            for i, r in enumerate(records)
        ],
        "shares": [{"contributor": "alice-r", "share_ppm": 600_000}, {"contributor": "bob-r", "share_ppm": 400_000}],
        "uncredited": [],
        "fee": 1,
    }
    receipt = Receipt.objects.create(
        id=hashlib.sha256(canonical_json(body)).hexdigest(),
        inference=inference,
        version=version,
        method="gradient",
        body=body,
        fee=1,
    )
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"/attribution/receipts/{receipt.pk}/")
        cells = page.get_by_test_id("record-text")
        assert cells.count() == len(records)
        line = page.evaluate("() => parseFloat(getComputedStyle(document.body).lineHeight) || 22")
        for i in range(cells.count()):
            height = cells.nth(i).evaluate("el => el.getBoundingClientRect().height")
            assert height <= 3.5 * line, f"record text {i} is {height} px tall at {width} px (not clamped)"
        total = page.evaluate("() => document.documentElement.scrollHeight")
        assert total < 2500, f"the receipt page is {total} px tall at {width} px"
        assert overflow(page) <= 0
        screenshot(page, f"issue15-receipt-{width}")


def test_contributor_valuation_chart_labels_are_readable(page: Any, transactional_db: None) -> None:
    version = model_version()
    alice = UserFactory(username="alice-v")
    records_with_values(version, {alice: [0.25, -0.05]})
    second = model_version(datanet=version.ml_model.datanet)
    for record in alice.records.all():
        RecordValuation.objects.create(version=second, record=record, knn_shapley=0.4)
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"/attribution/contributors/{alice.username}/")
        heights = page.locator("#valuation-chart text").evaluate_all(
            "els => els.map(el => el.getBoundingClientRect().height)"
        )
        assert heights and min(heights) >= 9, f"chart labels {heights} px tall at {width} px"
        screenshot(page, f"issue15-contributor-chart-{width}")
