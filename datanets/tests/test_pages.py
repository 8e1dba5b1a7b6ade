"""Datanet pages that must tell the truth (issue 15): a failed upload can be retried with a column map, a duplicate
file says whose it is, error rows say their line once, duplicates link to what they copy, a snapshot offers its
manifest and card, acceptance rates never round up to 100%, and a GET on a form-only address explains itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.test import Client

from accounts.tests.factories import UserFactory
from datanets.models import Contribution, Record, Vote
from datanets.tests.factories import DatanetFactory, add_curators, ingest, jsonl, snapshot_with

pytestmark = pytest.mark.django_db

CSV = b"review,rating\nWorks well and I sleep again.,positive\nAwful headaches all week.,negative\n"


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_failed_upload_is_retried_by_its_owner_with_a_column_map(tmp_path: Path) -> None:
    datanet = DatanetFactory()
    alice = UserFactory()
    failed, created = ingest(alice, datanet, CSV, "reviews.csv", tmp_path)
    assert created and failed.status == Contribution.Status.FAILED and failed.rows_seen == 0

    page = client_for(alice).get(failed.get_absolute_url()).content.decode()
    assert "column mapping" in page and f"/d/{datanet.slug}/upload/#column-map" in page  # the failure points there

    retried, created = ingest(
        alice, datanet, CSV, "reviews-renamed.csv", tmp_path, column_map={"review": "text", "rating": "label"}
    )
    assert created and retried.pk == failed.pk
    assert retried.status == Contribution.Status.DONE and retried.records_new == 2 and not retried.error
    assert retried.filename == "reviews-renamed.csv" and retried.column_map == {"review": "text", "rating": "label"}
    assert Record.objects.filter(contribution=retried).count() == 2

    again, created = ingest(alice, datanet, CSV, "reviews.csv", tmp_path)  # done now: the same file counts once
    assert not created and again.pk == failed.pk and Record.objects.count() == 2


def test_someone_elses_failed_file_is_not_retried_and_the_page_says_whose_it_is(tmp_path: Path) -> None:
    datanet = DatanetFactory()
    alice, bob = UserFactory(username="alice-f"), UserFactory(username="bob-f")
    failed, _ = ingest(alice, datanet, CSV, "reviews.csv", tmp_path)
    mine, created = ingest(bob, datanet, CSV, "mine.csv", tmp_path, column_map={"review": "text", "rating": "label"})
    assert not created and mine.pk == failed.pk and mine.status == Contribution.Status.FAILED

    page = client_for(bob).get(failed.get_absolute_url() + "?same_file=1").content.decode()
    assert "exactly the same bytes as this one, which alice-f uploaded" in page
    assert "yours added nothing" in page
    assert 'data-testid="retry-hint"' not in page  # only alice may retry it
    own = client_for(alice).get(failed.get_absolute_url() + "?same_file=1").content.decode()
    assert "You uploaded this exact file before" in own


def test_error_rows_say_their_line_once_and_duplicates_link_to_what_they_copy(tmp_path: Path) -> None:
    datanet = DatanetFactory()
    alice, bob = UserFactory(), UserFactory()
    original = {"text": "The refund arrived in two days and support was kind.", "label": "positive"}
    first, _ = ingest(alice, datanet, jsonl([original]), "first.jsonl", tmp_path)
    content = jsonl([original, {"text": "fine", "label": "positive"}]) + b"{not json\n"
    second, _ = ingest(bob, datanet, content, "second.jsonl", tmp_path)
    assert second.records_invalid == 1 and second.records_duplicate == 1

    page = client_for(bob).get(second.get_absolute_url()).content.decode()
    assert "line 3:" not in page and "not valid JSON" in page
    copied = Record.objects.get(contribution=first)
    assert f'href="{copied.get_absolute_url()}" data-testid="duplicate-of">#{copied.pk}</a>' in page


def test_a_snapshot_offers_its_manifest_and_card() -> None:
    datanet, snapshot = snapshot_with([{"text": f"record {i}", "label": "positive"} for i in range(3)])
    client = client_for(datanet.owner)
    page = client.get(snapshot.get_absolute_url()).content.decode()
    assert 'data-testid="download-manifest"' in page and 'data-testid="download-card"' in page

    manifest = client.get(f"/d/{datanet.slug}/v/1/manifest.jsonl")
    assert manifest.status_code == 200 and "attachment" in manifest["Content-Disposition"]
    lines = [json.loads(line) for line in b"".join(manifest.streaming_content).decode().splitlines()]
    assert [line["position"] for line in lines] == [0, 1, 2]
    card = client.get(f"/d/{datanet.slug}/v/1/card.json")
    assert card.status_code == 200 and card.json()["root"] == snapshot.root and card.json()["records"] == 3


def test_an_acceptance_rate_with_one_rejection_never_reads_100_percent() -> None:
    datanet, _ = snapshot_with([{"text": f"record {i}", "label": "positive"} for i in range(560)])
    curator = add_curators(datanet, 1)[0]
    rejected = Record.objects.filter(datanet=datanet).first()
    Record.objects.filter(pk=rejected.pk).update(status=Record.Status.REJECTED)
    Vote.objects.create(record=rejected, curator=curator, decision="reject", reason="off-topic")
    page = Client().get(f"/d/{datanet.slug}/stats/").content.decode()
    assert '<td data-testid="acceptance">99.8%</td>' in page


def test_get_on_a_form_only_address_explains_itself() -> None:
    datanet = DatanetFactory()
    response = client_for(datanet.owner).get(f"/d/{datanet.slug}/publish/")
    assert response.status_code == 405 and response["Allow"] == "POST"
    page = response.content.decode()
    assert "405 · Method not allowed" in page and "use its button" in page
