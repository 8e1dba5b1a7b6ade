"""Ingestion amplification (issue 12, finding 3): duplicates are links that count against a daily row cap, and a
file that breaks mid-stream keeps what was read before the break."""

from __future__ import annotations

import gzip
import json

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from core.models import Job
from datanets.models import Contribution, Record, RowError
from datanets.tests.factories import DatanetFactory, distinct_records, ingest, jsonl

pytestmark = pytest.mark.django_db


def test_a_gzip_of_100000_identical_rows_stores_one_row_of_data_and_stops_at_the_row_cap(tmp_path, settings):
    """Before: all 100,000 rows stored with their full data while the record quota counted 1."""
    settings.QUOTA_ROWS_PER_DAY = 10_000
    alice = UserFactory()
    datanet = DatanetFactory()
    row = distinct_records(1, words=40)[0]
    content = gzip.compress(jsonl([row]) * 100_000, compresslevel=9)
    assert len(content) < 200 * 1024  # the file was 94 KB
    c, _ = ingest(alice, datanet, content, "same.jsonl.gz", tmp_path)

    assert c.status == Contribution.Status.DONE
    assert (c.rows_seen, c.records_new, c.records_duplicate, c.records_over_quota) == (10_001, 1, 9_999, 1)
    assert Record.objects.filter(contribution=c).count() == 10_000
    assert Record.objects.filter(contribution=c).exclude(data={}).count() == 1  # the original alone holds data
    original = Record.objects.get(contribution=c, line_no=1)
    link = Record.objects.select_related("duplicate_of").get(contribution=c, line_no=500)
    assert (link.data, link.duplicate_of_id, link.content_hash) == ({}, original.pk, original.content_hash)
    assert link.content == original.data == row
    (cap,) = RowError.objects.filter(contribution=c)
    assert cap.line_no == 10_001
    assert cap.message == (
        "line 10001: over your daily limit of 10,000 rows read (duplicates and rows with errors count too); "
        "ingestion stopped here, upload the rest tomorrow"
    )
    assert "Stopped early: line 10001: over your daily limit of 10,000 rows read" in c.job.message

    # The cap is per day, across files: the next upload reads nothing.
    again, _ = ingest(alice, datanet, jsonl(distinct_records(3, seed=5)), "more.jsonl", tmp_path)
    assert (again.rows_seen, again.records_new, again.records_over_quota) == (1, 0, 1)


def test_invalid_rows_count_against_the_row_cap(tmp_path, settings):
    settings.QUOTA_ROWS_PER_DAY = 5
    c, _ = ingest(UserFactory(), DatanetFactory(), b"{broken\n" * 20, "bad.jsonl", tmp_path)
    assert (c.rows_seen, c.records_invalid, c.records_over_quota) == (6, 5, 1)


def test_duplicates_are_shown_through_their_original_on_pages_and_the_api(tmp_path):
    alice = UserFactory()
    datanet = DatanetFactory()
    base = distinct_records(2, words=40)
    near = dict(base[0], text=base[0]["text"].replace(base[0]["text"].split()[10], "zebra", 1))
    ingest(alice, datanet, jsonl(base), "a.jsonl", tmp_path)
    c, _ = ingest(alice, datanet, jsonl([near, base[1], near]), "b.jsonl", tmp_path)
    assert (c.records_near_duplicate, c.records_duplicate) == (1, 2)
    near_rec, exact_rec, copy_of_near = Record.objects.filter(contribution=c).order_by("line_no")
    assert near_rec.status == Record.Status.NEAR_DUPLICATE and near_rec.data == {}
    assert copy_of_near.duplicate_of_id == near_rec.pk and copy_of_near.data == {}
    assert near_rec.content == base[0] and exact_rec.content == base[1] and copy_of_near.content == base[0]

    api = APIClient()
    api.force_authenticate(alice)
    body = api.get(f"/api/records/{copy_of_near.pk}/").json()
    assert body["data"] == base[0] and body["duplicate_of"] == near_rec.pk
    listed = api.get(f"/api/datanets/{datanet.slug}/records/", {"status": "duplicate"}).json()["results"]
    assert {json.dumps(r["data"], sort_keys=True) for r in listed} == {
        json.dumps(base[0], sort_keys=True),
        json.dumps(base[1], sort_keys=True),
    }

    browser = Client()
    browser.force_login(alice)
    page = browser.get(exact_rec.get_absolute_url()).content.decode()
    assert "Stored as a link to record" in page and base[1]["text"] in page
    mine = browser.get(reverse("datanets:my_records")).content.decode()
    assert mine.count(base[0]["text"][:60]) >= 3  # the original and both links to it show its text


def test_truncated_gzip_keeps_the_rows_before_the_break_and_fails_saying_where(tmp_path, settings):
    """Before: the rows read since the last commit (up to a batch) were dropped and the contribution was done."""
    settings.INGEST_BATCH_SIZE = 500
    records = distinct_records(1_200, words=12)
    data = gzip.compress(jsonl(records))
    c, _ = ingest(UserFactory(), DatanetFactory(), data[: len(data) * 9 // 10], "cut.jsonl.gz", tmp_path)

    assert c.status == Contribution.Status.FAILED
    broke_after = int(c.error.split("the file is truncated after line ")[1].split(";")[0])
    assert 1_000 < broke_after < 1_200  # past the last whole batch
    lines = list(Record.objects.filter(contribution=c).order_by("line_no").values_list("line_no", flat=True))
    assert lines == list(range(1, broke_after + 1))
    assert c.rows_seen == c.last_line == broke_after
    assert c.error.endswith(f"(the {broke_after:,} rows before it were stored)")
    job = Job.objects.get(pk=c.job_id)
    assert job.status == Job.Status.FAILED and f"truncated after line {broke_after}" in job.error


def test_an_ingestion_out_of_attempts_fails_its_contribution_on_the_page_and_the_job_api(tmp_path):
    """A file that kills its worker (by memory, say) was re-sent every 60 s forever; now the third death is final."""
    from datetime import timedelta

    from django.utils import timezone

    from core.jobs import job_claim
    from datanets import services

    alice = UserFactory()
    datanet = DatanetFactory()
    path = tmp_path / "a.jsonl"
    path.write_bytes(jsonl(distinct_records(3)))
    result = services.contribution_from_path(user=alice, datanet=datanet, path=path, filename="a.jsonl")
    c = result.contribution
    Contribution.objects.filter(pk=c.pk).update(status=Contribution.Status.INGESTING)
    Job.objects.filter(pk=c.job_id).update(
        status=Job.Status.RUNNING, attempts=3, heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    assert job_claim(job_id=str(c.job_id)) is None  # the redelivery after the third death

    expected = "failed after 3 attempts: the worker stopped while running it (out of memory?)"
    c.refresh_from_db()
    assert (c.status, c.error) == (Contribution.Status.FAILED, expected)
    browser = Client()
    browser.force_login(alice)
    assert expected in browser.get(c.get_absolute_url()).content.decode()
    api = APIClient()
    api.force_authenticate(alice)
    body = api.get(f"/api/jobs/{c.job_id}/").json()
    assert (body["status"], body["error"], body["attempts"]) == ("failed", expected, 3)
