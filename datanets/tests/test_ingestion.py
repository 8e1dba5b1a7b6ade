"""Upload and ingestion through the services: formats, bad input, duplicates, quotas."""

from __future__ import annotations

import gzip
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from accounts.tests.factories import UserFactory
from core.errors import NotFound, QuotaExceeded, TooLarge, UserError
from core.models import Job
from datanets import services
from datanets.models import Contribution, Record, RowError
from datanets.services import ingestion, uploads
from datanets.tests.factories import DatanetFactory, distinct_records, ingest, jsonl

pytestmark = pytest.mark.django_db


@pytest.fixture
def datanet():
    return DatanetFactory()


@pytest.fixture
def alice():
    return UserFactory(username="alice")


def errors_of(contribution: Contribution) -> dict[int, str]:
    return dict(RowError.objects.filter(contribution=contribution).values_list("line_no", "message"))


def test_jsonl_records_are_stored_hashed_and_pending(datanet, alice, tmp_path):
    records = distinct_records(5)
    c, created = ingest(alice, datanet, jsonl(records), "reviews.jsonl", tmp_path)
    assert created
    assert c.status == Contribution.Status.DONE
    assert (c.rows_seen, c.records_new, c.records_invalid) == (5, 5, 0)
    stored = list(Record.objects.filter(contribution=c).order_by("line_no"))
    assert [r.line_no for r in stored] == [1, 2, 3, 4, 5]
    assert all(r.status == Record.Status.PENDING for r in stored)
    assert stored[0].data == records[0] and stored[0].label == records[0]["label"]
    assert len({r.content_hash for r in stored}) == 5
    assert c.job.status == "succeeded" and c.job.result["new"] == 5


def test_malformed_jsonl_line_is_reported_and_valid_lines_kept(datanet, alice, tmp_path):
    good = distinct_records(2)
    content = jsonl(good[:1]) + b'{"text": "broken", "label": \n' + jsonl(good[1:])
    c, _ = ingest(alice, datanet, content, "mixed.jsonl", tmp_path)
    assert c.records_new == 2 and c.records_invalid == 1
    assert "line 2" in errors_of(c)[2] and "JSON" in errors_of(c)[2]


def test_schema_violation_and_label_outside_set(datanet, alice, tmp_path):
    rows = [
        {"text": "fine record about billing and refunds", "label": "positive"},
        {"text": "label not allowed here at all", "label": "meh"},
        {"label": "positive"},
        {"text": 42, "label": "negative"},
    ]
    c, _ = ingest(alice, datanet, jsonl(rows), "schema.jsonl", tmp_path)
    errors = errors_of(c)
    assert c.records_new == 1 and c.records_invalid == 3
    assert "meh" in errors[2] and "negative, positive" in errors[2]
    assert 'missing required field "text"' in errors[3]
    assert "string" in errors[4]


def test_csv_with_missing_and_extra_columns(datanet, alice, tmp_path):
    content = b"text,label\nthe courier lost my package twice now,negative\nonly one value\na,b,c\n"
    c, _ = ingest(alice, datanet, content, "rows.csv", tmp_path)
    errors = errors_of(c)
    assert c.records_new == 1 and c.records_invalid == 2
    assert "line 3" in errors[3] and "header has 2 columns" in errors[3]
    assert "line 4" in errors[4]


def test_csv_column_mapping(datanet, alice, tmp_path):
    content = b"review,sentiment,source\nthe refund arrived quickly and in full,positive,web\n"
    c, _ = ingest(alice, datanet, content, "mapped.csv", tmp_path, column_map={"review": "text", "sentiment": "label"})
    assert c.records_new == 1
    assert Record.objects.get(contribution=c).data == {
        "text": "the refund arrived quickly and in full",
        "label": "positive",
    }


def test_utf8_bom_is_stripped(datanet, alice, tmp_path):
    content = b"\xef\xbb\xbf" + jsonl(distinct_records(1))
    c, _ = ingest(alice, datanet, content, "bom.jsonl", tmp_path)
    assert c.records_new == 1 and c.records_invalid == 0


def test_non_utf8_bytes_are_a_row_error(datanet, alice, tmp_path):
    content = jsonl(distinct_records(1)) + b'{"text": "caf\xe9 was cold", "label": "negative"}\n'
    c, _ = ingest(alice, datanet, content, "latin1.jsonl", tmp_path)
    assert c.records_new == 1
    assert "UTF-8" in errors_of(c)[2]


def test_empty_file_is_refused_up_front(datanet, alice, tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    with pytest.raises(UserError, match="empty"):
        services.contribution_from_path(user=alice, datanet=datanet, path=path, filename="empty.jsonl")
    assert not Contribution.objects.exists()


def test_whitespace_only_file_fails_with_a_clear_message(datanet, alice, tmp_path):
    c, _ = ingest(alice, datanet, b"\n\n   \n", "blank.jsonl", tmp_path)
    assert c.status == Contribution.Status.FAILED
    assert "no records" in c.error and "blank lines" in c.error
    assert c.job.status == "failed"


def test_ten_megabyte_single_line_is_skipped_not_loaded(datanet, alice, tmp_path, settings):
    settings.UPLOAD_MAX_LINE_BYTES = 1024 * 1024
    huge = b'{"text": "' + b"a" * (10 * 1024 * 1024) + b'", "label": "positive"}\n'
    c, _ = ingest(
        alice,
        datanet,
        jsonl(distinct_records(1)) + huge + jsonl(distinct_records(2, seed=9)[1:]),
        "big.jsonl",
        tmp_path,
    )
    assert c.records_new == 2
    assert "line 2" in errors_of(c)[2] and "over the limit of 1 MB per line" in errors_of(c)[2]


def test_gzip_bomb_stops_at_the_expanded_limit(datanet, alice, tmp_path, settings):
    settings.UPLOAD_MAX_EXPANDED_BYTES = 5 * 1024 * 1024
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb") as gz:
        line = json.dumps({"text": "x " * 40, "label": "positive"}).encode() + b"\n"
        for _ in range((50 * 1024 * 1024) // len(line)):
            gz.write(line)
    c, _ = ingest(alice, datanet, buf.getvalue(), "bomb.jsonl.gz", tmp_path)
    assert "expand" in c.error.lower() or "limit" in c.error.lower()
    assert c.job.status in {"failed", "succeeded"}


def test_gzip_file_is_read(datanet, alice, tmp_path):
    c, _ = ingest(alice, datanet, gzip.compress(jsonl(distinct_records(3))), "recs.jsonl.gz", tmp_path)
    assert c.records_new == 3


def test_parquet_file_is_read(datanet, alice, tmp_path):
    records = distinct_records(4)
    table = pa.table({"text": [r["text"] for r in records], "label": [r["label"] for r in records]})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    c, _ = ingest(alice, datanet, buf.getvalue(), "recs.parquet", tmp_path)
    assert c.records_new == 4


def test_txt_only_for_plain_text_datanets(alice, tmp_path):
    labeled = DatanetFactory()
    path = tmp_path / "lines.txt"
    path.write_bytes(b"one\ntwo\n")
    with pytest.raises(UserError, match="JSONL, CSV or Parquet"):
        services.contribution_from_path(user=alice, datanet=labeled, path=path, filename="lines.txt")
    plain = DatanetFactory(record_kind="text", labels=[])
    c, _ = ingest(alice, plain, b"first plain text line here\nsecond different text line\n", "lines.txt", tmp_path)
    assert c.records_new == 2


def test_content_not_matching_extension(datanet, alice, tmp_path):
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    c, _ = ingest(alice, datanet, png, "photo.csv", tmp_path)
    assert c.status == Contribution.Status.FAILED
    assert "csv" in c.error.lower() or "CSV" in c.error
    assert Record.objects.count() == 0


def test_unknown_extension_refused(datanet, alice, tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(UserError, match="supported"):
        services.contribution_from_path(user=alice, datanet=datanet, path=path, filename="data.xlsx")


def test_file_larger_than_the_limit_is_refused(datanet, alice, settings):
    settings.UPLOAD_MAX_BYTES = 1000
    with pytest.raises(TooLarge, match="limit"):
        services.upload_start(user=alice, datanet=datanet, filename="big.jsonl", size=1001)


def test_same_file_twice_is_recognized_and_not_counted_twice(datanet, alice, tmp_path):
    content = jsonl(distinct_records(3))
    first, created1 = ingest(alice, datanet, content, "a.jsonl", tmp_path)
    bob = UserFactory()
    second, created2 = ingest(bob, datanet, content, "renamed.jsonl", tmp_path)
    assert created1 and not created2
    assert first.pk == second.pk
    assert Record.objects.filter(datanet=datanet).count() == 3
    assert Contribution.objects.filter(datanet=datanet).count() == 1


def test_exact_duplicates_are_linked_to_the_earlier_record(datanet, alice, tmp_path):
    records = distinct_records(3)
    first, _ = ingest(alice, datanet, jsonl(records), "a.jsonl", tmp_path)
    bob = UserFactory()
    second, _ = ingest(
        bob, datanet, jsonl([records[1], distinct_records(1, seed=99)[0], records[1]]), "b.jsonl", tmp_path
    )
    assert second.records_duplicate == 2 and second.records_new == 1
    original = Record.objects.get(contribution=first, line_no=2)
    dups = Record.objects.filter(contribution=second, status=Record.Status.DUPLICATE)
    assert {d.duplicate_of_id for d in dups} == {original.pk}


def test_near_duplicates_are_linked_and_kept_out_of_review(datanet, alice, tmp_path):
    base = distinct_records(2, words=40)
    near = dict(base[0])
    words = near["text"].split()
    words[10] = "zebra"
    near["text"] = " ".join(words)
    ingest(alice, datanet, jsonl(base), "a.jsonl", tmp_path)
    c, _ = ingest(UserFactory(), datanet, jsonl([near]), "b.jsonl", tmp_path)
    assert c.records_near_duplicate == 1 and c.records_new == 0
    rec = Record.objects.get(contribution=c)
    assert rec.status == Record.Status.NEAR_DUPLICATE
    assert rec.duplicate_of.data == base[0]
    assert rec.similarity >= datanet.near_dup_threshold


@pytest.mark.parametrize("worker_state", ["fresh worker, no saved index", "fresh worker, saved index", "stale"])
def test_near_duplicates_are_found_whatever_the_worker_remembers(datanet, alice, tmp_path, settings, worker_state):
    """The band index is a cache of the stored signatures: a worker that never saw the Datanet, one that loads the
    saved index, and one whose in-memory index missed another worker's records all find the same near duplicate."""
    from datanets.services import duplicates

    settings.BAND_INDEX_DIR = str(tmp_path / "band-index")
    base = distinct_records(3, words=40)
    ingest(alice, datanet, jsonl(base[:1]), "a.jsonl", tmp_path)
    if worker_state == "stale":
        remembered = duplicates._last_index  # this worker's index, before "another worker" adds a record
        duplicates._last_index = None
        ingest(alice, datanet, jsonl(base[1:2]), "b.jsonl", tmp_path)
        duplicates._last_index = remembered
    else:
        ingest(alice, datanet, jsonl(base[1:2]), "b.jsonl", tmp_path)
        if worker_state == "fresh worker, saved index":
            index = duplicates._last_index[1]
            index.save(str(duplicates._index_path(duplicates._last_index[0])))
        duplicates._last_index = None
    near = dict(base[1], text=base[1]["text"].replace("case 1", "case one"))
    c, _ = ingest(UserFactory(), datanet, jsonl([near, base[2]]), "c.jsonl", tmp_path)
    assert (c.records_near_duplicate, c.records_new) == (1, 1)
    rec = Record.objects.get(contribution=c, line_no=1)
    assert rec.duplicate_of.data == base[1]


def test_near_duplicates_within_one_file(datanet, alice, tmp_path):
    base = distinct_records(1, words=40)[0]
    near = dict(base, text=base["text"].replace("case 0", "case zero"))
    c, _ = ingest(alice, datanet, jsonl([base, near]), "a.jsonl", tmp_path)
    assert c.records_new == 1 and c.records_near_duplicate == 1
    first = Record.objects.get(contribution=c, line_no=1)
    assert Record.objects.get(contribution=c, line_no=2).duplicate_of_id == first.pk


def test_daily_record_quota(datanet, alice, tmp_path, settings):
    settings.QUOTA_RECORDS_PER_DAY = 3
    c, _ = ingest(alice, datanet, jsonl(distinct_records(5)), "a.jsonl", tmp_path)
    assert c.records_new == 3 and c.records_over_quota == 2
    assert "daily limit" in errors_of(c)[4]


def test_daily_byte_quota(datanet, alice, settings):
    settings.QUOTA_BYTES_PER_DAY = 100
    with pytest.raises(QuotaExceeded, match="daily limit"):
        services.upload_start(user=alice, datanet=datanet, filename="a.jsonl", size=101)


def test_private_datanet_refuses_outsiders(alice, tmp_path):
    """An outsider is told the Datanet does not exist (a 404), not that it is private (which would confirm it)."""
    private = DatanetFactory(is_public=False)
    path = tmp_path / "a.jsonl"
    path.write_bytes(jsonl(distinct_records(1)))
    with pytest.raises(NotFound, match="There is no Datanet"):
        services.contribution_from_path(user=alice, datanet=private, path=path, filename="a.jsonl")


def test_paste_small_contribution(datanet, alice):
    result = services.contribution_from_paste(user=alice, datanet=datanet, text=jsonl(distinct_records(2)).decode())
    services.contribution_ingest(job_id=str(result.contribution.job_id))
    result.contribution.refresh_from_db()
    assert result.contribution.records_new == 2 and result.contribution.source == "paste"


def test_paste_nothing_is_refused(datanet, alice):
    with pytest.raises(UserError, match="Nothing was pasted"):
        services.contribution_from_paste(user=alice, datanet=datanet, text="   ")


def test_chunked_upload_resumes_from_the_server_offset(datanet, alice):
    data = jsonl(distinct_records(20))
    upload = services.upload_start(user=alice, datanet=datanet, filename="chunks.jsonl", size=len(data))
    services.upload_append(user=alice, upload_id=upload.id, offset=0, data=data[:100])
    with pytest.raises(Exception, match="resume from byte 100"):
        services.upload_append(user=alice, upload_id=upload.id, offset=0, data=data[:100])
    services.upload_append(user=alice, upload_id=upload.id, offset=100, data=data[100:])
    result = services.upload_complete(user=alice, upload_id=upload.id)
    assert result.created
    services.contribution_ingest(job_id=str(result.contribution.job_id))
    result.contribution.refresh_from_db()
    assert result.contribution.records_new == 20


def test_incomplete_upload_cannot_complete(datanet, alice):
    upload = services.upload_start(user=alice, datanet=datanet, filename="x.jsonl", size=50)
    services.upload_append(user=alice, upload_id=upload.id, offset=0, data=b"x" * 10)
    with pytest.raises(Exception, match="Only 10 of 50 bytes"):
        services.upload_complete(user=alice, upload_id=upload.id)


def test_completing_an_upload_twice_gives_one_contribution(datanet, alice):
    data = jsonl(distinct_records(3))
    upload = services.upload_start(user=alice, datanet=datanet, filename="twice.jsonl", size=len(data))
    services.upload_append(user=alice, upload_id=upload.id, offset=0, data=data)
    first = services.upload_complete(user=alice, upload_id=upload.id)
    second = services.upload_complete(user=alice, upload_id=upload.id)
    assert first.created and not second.created
    assert second.contribution.pk == first.contribution.pk
    assert Contribution.objects.filter(datanet=datanet).count() == 1
    assert "already uploaded" in second.message


@pytest.mark.parametrize("parallel_finishes", ["while this one hashes", "before this one reads the file"])
def test_a_parallel_complete_wins_and_this_one_returns_its_contribution(datanet, alice, monkeypatch, parallel_finishes):
    """Hashing runs before the row lock: the request that loses the race re-checks under the lock."""
    data = jsonl(distinct_records(3))
    upload = services.upload_start(user=alice, datanet=datanet, filename="race.jsonl", size=len(data))
    services.upload_append(user=alice, upload_id=upload.id, offset=0, data=data)
    real_sha256_file = uploads.sha256_file
    parallel: list[services.ContributionResult] = []
    raced = False

    def sha256_with_a_parallel_complete(path):
        nonlocal raced
        if raced:  # the parallel request itself hashes normally
            return real_sha256_file(path)
        raced = True
        if parallel_finishes == "while this one hashes":
            digest = real_sha256_file(path)
            parallel.append(services.upload_complete(user=alice, upload_id=upload.id))
            return digest
        parallel.append(services.upload_complete(user=alice, upload_id=upload.id))
        return real_sha256_file(path)  # the part file is gone by now

    monkeypatch.setattr(uploads, "sha256_file", sha256_with_a_parallel_complete)
    result = services.upload_complete(user=alice, upload_id=upload.id)
    assert parallel[0].created and not result.created
    assert result.contribution.pk == parallel[0].contribution.pk
    assert Contribution.objects.filter(datanet=datanet).count() == 1
    assert Job.objects.filter(kind="ingest").count() == 1


def test_ingestion_rerun_resumes_without_losing_or_doubling(datanet, alice, tmp_path, settings):
    """An interrupted job (the worker died after some batches) is run again: it continues where it stopped."""
    settings.INGEST_BATCH_SIZE = 4
    records = distinct_records(10)
    path = tmp_path / "a.jsonl"
    path.write_bytes(jsonl(records))
    result = services.contribution_from_path(user=alice, datanet=datanet, path=path, filename="a.jsonl")
    c = result.contribution
    from core.storage import blob_local_path
    from datanets.ingest.neardup import RECALL_WEIGHTS, MinHasher, lsh_params

    bands, r = lsh_params(datanet.near_dup_threshold, 128, *RECALL_WEIGHTS)
    with blob_local_path(c.blob_name) as local:
        batches = ingestion._prepared_batches(
            c, local, MinHasher(num_perm=128), bands, r, rows_left=10**6, batch_size=4
        )
        ingestion._ingest_batch(c, next(batches), bands, r, 10**6)  # first batch committed, then "crash"
        batches.close()
    c.job.status = "running"
    c.job.save()
    Job.objects.filter(pk=c.job_id).update(heartbeat_at=None)
    services.contribution_ingest(job_id=str(c.job_id))  # claim works: a running job with no heartbeat is stale
    c.refresh_from_db()
    assert Record.objects.filter(contribution=c).count() == 10
    assert sorted(Record.objects.filter(contribution=c).values_list("line_no", flat=True)) == list(range(1, 11))
    assert c.rows_seen == 10 and c.records_new == 10


def test_job_is_not_run_twice(datanet, alice, tmp_path):
    c, _ = ingest(alice, datanet, jsonl(distinct_records(3)), "a.jsonl", tmp_path)
    services.contribution_ingest(job_id=str(c.job_id))  # a second delivery of the same task
    c.refresh_from_db()
    assert Record.objects.filter(contribution=c).count() == 3 and c.rows_seen == 3
    assert c.job.attempts == 1
