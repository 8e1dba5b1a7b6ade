"""The version page (issue 15): deploying with no price is refused (it used to deploy at 1 credit without saying),
the price pill agrees in number, and the valuation line counts open flags in words that cannot be misread."""

from __future__ import annotations

import pytest
from django.test import Client

from attribution.models import Flag
from core.models import Job
from datanets.models import Record
from settlement.tests.factories import model_version, records_with_values

pytestmark = pytest.mark.django_db


def test_deploying_with_an_empty_price_is_refused_and_says_why() -> None:
    version = model_version()
    version.deployed = False
    version.save(update_fields=["deployed"])
    client = Client()
    client.force_login(version.ml_model.builder)
    url = f"/models/{version.ml_model.slug}/v/1/deploy/"

    page = client.post(url, {"deployed": "1", "price_credits": ""}, follow=True).content.decode()
    version.refresh_from_db()
    assert not version.deployed and "Enter a price per call" in page
    assert 'name="price_credits" type="number" min="1" step="1" value="1" style="width:6rem" required' in page

    page = client.post(url, {"deployed": "1", "price_credits": "1"}, follow=True).content.decode()
    version.refresh_from_db()
    assert version.deployed and version.price_credits == 1 and "deployed · 1 credit/call" in page


def test_the_valuation_line_counts_the_flags_still_open() -> None:
    version = model_version()
    user = version.ml_model.builder
    records = records_with_values(version, {user: [-0.1, -0.2, -0.3]})
    Job.objects.create(
        kind="valuation", target_id=str(version.pk), status=Job.Status.SUCCEEDED, message="Valued 3 records; 3 sent"
    )
    for record in records:
        Flag.objects.create(record=record, version=version, reason="negative value", evidence={})
    Flag.objects.filter(record=records[0]).update(status=Flag.Status.DISMISSED)
    Record.objects.filter(pk=records[1].pk).update(status=Record.Status.REJECTED)
    Flag.objects.filter(record=records[1]).update(status=Flag.Status.CONFIRMED)
    page = Client().get(f"/models/{version.ml_model.slug}/v/1/").content.decode()
    assert 'data-testid="open-flags">1 still open for curators</a>' in page
