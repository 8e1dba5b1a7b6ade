"""Review to quorum, stats, snapshots and exports through the services."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from django.core.files.storage import default_storage

from accounts.models import AuditEvent
from accounts.tests.factories import UserFactory
from core.canonical import canonical_json
from core.errors import Conflict, Forbidden, UserError
from datanets import selectors, services
from datanets.ingest.manifest import merkle_root_sha256
from datanets.models import Record, Snapshot, SnapshotExport, Vote
from datanets.tests.factories import DatanetFactory, add_curators, distinct_records, ingest, jsonl

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(tmp_path):
    datanet = DatanetFactory()
    c1, c2, c3 = add_curators(datanet, 3)
    alice = UserFactory()
    contribution, _ = ingest(alice, datanet, jsonl(distinct_records(6)), "a.jsonl", tmp_path)
    records = list(Record.objects.filter(contribution=contribution).order_by("id"))
    return datanet, (c1, c2, c3), alice, records


def test_quorum_approves_and_removes_from_every_queue(setup):
    datanet, (c1, c2, c3), _, records = setup
    r = records[0]
    assert services.vote_cast(curator=c1, record_id=r.pk, decision="approve").status == "pending"
    assert r.pk not in [x.pk for x in selectors.review_queue(datanet=datanet, curator=c1)]
    assert r.pk in [x.pk for x in selectors.review_queue(datanet=datanet, curator=c3)]
    assert services.vote_cast(curator=c2, record_id=r.pk, decision="approve").status == "approved"
    assert r.pk not in [x.pk for x in selectors.review_queue(datanet=datanet, curator=c3)]
    assert Vote.objects.filter(record=r).count() == 2
    assert AuditEvent.objects.filter(action="record.vote.approve", target_id=str(r.pk)).count() == 2


def test_rejection_quorum_needs_reasons(setup):
    _, (c1, c2, _), _, records = setup
    r = records[1]
    with pytest.raises(UserError, match="Say why"):
        services.vote_cast(curator=c1, record_id=r.pk, decision="reject")
    services.vote_cast(curator=c1, record_id=r.pk, decision="reject", reason="off topic")
    assert services.vote_cast(curator=c2, record_id=r.pk, decision="reject", reason="spam").status == "rejected"


def test_vote_by_non_curator_is_forbidden(setup):
    _, _, _, records = setup
    with pytest.raises(Forbidden, match="Only this Datanet's curators"):
        services.vote_cast(curator=UserFactory(), record_id=records[0].pk, decision="approve")
    assert not Vote.objects.exists()


def test_vote_on_own_record_is_forbidden(setup, tmp_path):
    datanet, (c1, _, _), _, _ = setup
    own, _ = ingest(c1, datanet, jsonl(distinct_records(1, seed=3)), "own.jsonl", tmp_path)
    record = Record.objects.get(contribution=own)
    with pytest.raises(Forbidden, match="You contributed this record"):
        services.vote_cast(curator=c1, record_id=record.pk, decision="approve")
    assert record.pk not in [x.pk for x in selectors.review_queue(datanet=datanet, curator=c1)]


def test_second_vote_by_same_curator_is_refused(setup):
    _, (c1, _, _), _, records = setup
    services.vote_cast(curator=c1, record_id=records[2].pk, decision="approve")
    with pytest.raises(Conflict, match="already voted"):
        services.vote_cast(curator=c1, record_id=records[2].pk, decision="reject", reason="changed my mind")
    assert Vote.objects.filter(record=records[2]).count() == 1


def test_vote_on_resolved_record_is_refused(setup):
    _, (c1, c2, c3), _, records = setup
    for c in (c1, c2):
        services.vote_cast(curator=c, record_id=records[3].pk, decision="approve")
    with pytest.raises(Conflict, match="already approved"):
        services.vote_cast(curator=c3, record_id=records[3].pk, decision="reject", reason="late")


def test_stats_for_curators_and_contributors(setup):
    datanet, (c1, c2, _), alice, records = setup
    services.vote_cast(curator=c1, record_id=records[0].pk, decision="approve")
    services.vote_cast(curator=c2, record_id=records[0].pk, decision="approve")
    services.vote_cast(curator=c1, record_id=records[1].pk, decision="approve")
    services.vote_cast(curator=c2, record_id=records[1].pk, decision="reject", reason="no")
    services.vote_cast(curator=c1, record_id=records[2].pk, decision="reject", reason="bad")
    services.vote_cast(curator=c2, record_id=records[2].pk, decision="reject", reason="bad")
    by_curator = {s["curator"]: s for s in selectors.curator_stats(datanet)}
    assert by_curator[c1.username]["votes"] == 3
    assert by_curator[c1.username]["agreement"] == pytest.approx(2 / 2)  # records 0 and 2 resolved; 1 pending
    contributor = selectors.contributor_stats(datanet)[0]
    assert contributor["contributor"] == alice.username
    assert (contributor["submitted"], contributor["approved"], contributor["rejected"]) == (6, 1, 1)
    assert contributor["acceptance_rate"] == pytest.approx(0.5)


def _approve_all(records, curators):
    for r in records:
        for c in curators[:2]:
            services.vote_cast(curator=c, record_id=r.pk, decision="approve")


def test_publish_snapshot_with_root_card_and_split(setup):
    datanet, curators, alice, records = setup
    _approve_all(records[:4], curators)
    snap = services.snapshot_publish(actor=datanet.owner, datanet=datanet, notes="first")
    hashes = sorted(r.content_hash for r in records[:4])
    assert snap.version == 1 and snap.record_count == 4
    assert snap.root == merkle_root_sha256(hashes)
    assert snap.card["contributors"] == [{"username": alice.username, "records": 4}]
    assert sum(snap.card["labels"].values()) == 4
    assert snap.train_count + snap.validation_count == 4
    assert list(snap.entries.order_by("position").values_list("record__content_hash", flat=True)) == hashes
    manifest = default_storage.open(snap.manifest_name).read().decode().splitlines()
    assert [json.loads(line)["record_hash"] for line in manifest] == hashes
    # Each line is the canonical JSON of its entry, so anyone can re-hash the manifest.
    entries = snap.entries.order_by("position").values_list("position", "record__content_hash", "record_id", "split")
    assert manifest == [
        canonical_json({"position": p, "record_hash": h, "record_id": r, "split": s}).decode() for p, h, r, s in entries
    ]
    # Later approvals make a new version; the old one does not change.
    _approve_all(records[4:], curators)
    snap2 = services.snapshot_publish(actor=datanet.owner, datanet=datanet)
    assert snap2.version == 2 and snap2.record_count == 6
    snap.refresh_from_db()
    assert snap.record_count == 4 and snap.entries.count() == 4


def test_split_is_deterministic_by_hash():
    h = "0" * 64
    assert services.split_of(h, 10) == "validation"
    assert services.split_of("f" * 64, 10) == "train"


def test_publishing_an_empty_snapshot_is_refused(setup):
    datanet, _, _, _ = setup
    with pytest.raises(UserError, match="no record is approved"):
        services.snapshot_publish(actor=datanet.owner, datanet=datanet)
    assert not Snapshot.objects.exists()


def test_publishing_an_unchanged_snapshot_is_refused(setup):
    datanet, curators, _, records = setup
    _approve_all(records[:1], curators)
    services.snapshot_publish(actor=datanet.owner, datanet=datanet)
    with pytest.raises(Conflict, match="Nothing changed"):
        services.snapshot_publish(actor=datanet.owner, datanet=datanet)


def test_only_owner_publishes(setup):
    datanet, curators, _, records = setup
    _approve_all(records[:1], curators)
    with pytest.raises(Forbidden):
        services.snapshot_publish(actor=curators[0], datanet=datanet)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_export_builds_a_readable_file(setup, fmt):
    datanet, curators, _, records = setup
    _approve_all(records[:3], curators)
    snap = services.snapshot_publish(actor=datanet.owner, datanet=datanet)
    export = services.snapshot_export_request(actor=datanet.owner, snapshot=snap, fmt=fmt)
    services.snapshot_export_run(job_id=str(export.job_id))
    export.refresh_from_db()
    assert export.ready and export.size_bytes > 0
    with default_storage.open(export.blob_name, "rb") as fh:
        if fmt == "jsonl":
            rows = [json.loads(line) for line in fh.read().decode().splitlines()]
        else:
            rows = pq.read_table(fh).to_pylist()
    assert len(rows) == 3
    assert {r["record_hash"] for r in rows} == {r.content_hash for r in records[:3]}
    assert set(rows[0]) >= {"text", "label", "split", "contributor", "record_id"}


def test_export_of_unknown_format_is_refused(setup):
    datanet, curators, _, records = setup
    _approve_all(records[:1], curators)
    snap = services.snapshot_publish(actor=datanet.owner, datanet=datanet)
    with pytest.raises(UserError, match="jsonl"):
        services.snapshot_export_request(actor=datanet.owner, snapshot=snap, fmt="xlsx")
    assert not SnapshotExport.objects.exists()


def test_datanet_create_validates_labels_and_slug():
    owner = UserFactory()
    with pytest.raises(Exception, match="at least two labels"):
        services.datanet_create(owner=owner, title="Bad", record_kind="labeled_text", labels=["only"], domain="x")
    d = services.datanet_create(owner=owner, title="Support tickets", record_kind="qa", domain="support")
    assert d.slug == "support-tickets"
    with pytest.raises(Conflict, match="taken"):
        services.datanet_create(owner=owner, title="Support tickets", record_kind="qa", domain="support")
    assert AuditEvent.objects.filter(action="datanet.create", target_id=str(d.pk)).exists()


def test_record_kind_cannot_change_with_records(setup):
    datanet, _, _, _ = setup
    with pytest.raises(Conflict, match="record kind cannot change"):
        services.datanet_update(actor=datanet.owner, datanet=datanet, record_kind="text", labels=[])
    with pytest.raises(Forbidden):
        services.datanet_update(actor=UserFactory(), datanet=datanet, title="Hijacked")


def test_review_queue_page_and_api_cost_the_same_queries_for_many_records(setup, tmp_path, client):
    """A page of 50 records runs the queries of a page of 6: nothing is fetched per row (links, contributors)."""
    datanet, curators, alice, records = setup
    client.force_login(curators[0])
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries(url: str) -> tuple[int, bytes]:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        assert response.status_code == 200
        return len(captured), response.content

    page, api = f"/d/{datanet.slug}/review/", f"/api/datanets/{datanet.slug}/review-queue/"
    few_page, html = queries(page)
    few_api, _ = queries(api)
    assert html.count(b'data-testid="review-item"') == 6
    ingest(UserFactory(), datanet, jsonl(distinct_records(60, seed=11)), "more.jsonl", tmp_path)
    many_page, html = queries(page)
    many_api, body = queries(api)
    assert html.count(b'data-testid="review-item"') == 50 and len(json.loads(body)["results"]) == 50
    assert (many_page, many_api) == (few_page, few_api)
    # Deep pages and filters see the same records as walking the queue from the start.
    first = selectors.review_queue(datanet=datanet, curator=curators[0], limit=20)
    rest = selectors.review_queue(datanet=datanet, curator=curators[0], after_id=first[9].pk, limit=10)
    assert [r.pk for r in rest] == [r.pk for r in first[10:20]]
    assert all(r.datanet_id == datanet.pk and r.contributor.username for r in rest)
