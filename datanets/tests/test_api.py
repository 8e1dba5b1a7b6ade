"""The REST API: the same flows as the pages, with errors that explain themselves."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts import services as account_services
from accounts.tests.factories import UserFactory
from datanets import services
from datanets.models import Contribution, Record
from datanets.tests.factories import DatanetFactory, add_curators, distinct_records, jsonl

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    api = APIClient()
    _, raw = account_services.token_create(user=user, name="test")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return api


def run_job(body: dict) -> None:
    services.contribution_ingest(job_id=body["job"]["id"])


def test_create_datanet_and_list_with_filters():
    owner, c1 = UserFactory(), UserFactory()
    api = client_for(owner)
    resp = api.post(
        "/api/datanets/",
        {
            "title": "Legal Q&A",
            "domain": "legal",
            "record_kind": "qa",
            "curators": [c1.username],
            "approvals_needed": 1,
            "rejections_needed": 1,
        },
        format="json",
    )
    assert resp.status_code == 201, resp.json()
    assert resp.json()["slug"] == "legal-qa" and resp.json()["curator_usernames"] == [c1.username]
    detail = APIClient().get("/api/datanets/legal-qa/").json()
    assert detail["fields_spec"][0]["name"] == "question" and detail["counts"]["total"] == 0
    bad = api.post("/api/datanets/", {"title": "x", "domain": "y", "record_kind": "nope"}, format="json")
    assert bad.status_code == 400 and "record_kind" in bad.json()["detail"]


def test_upload_chunks_complete_ingest_review_publish_export_via_api():
    datanet = DatanetFactory(approvals_needed=1)
    (curator,) = add_curators(datanet, 1)
    alice = UserFactory()
    api = client_for(alice)
    data = jsonl(distinct_records(8)) + b"not json\n"
    start = api.post(
        f"/api/datanets/{datanet.slug}/uploads/", {"filename": "r.jsonl", "size": len(data)}, format="json"
    )
    assert start.status_code == 201
    upload_id = start.json()["id"]
    r1 = api.put(
        f"/api/uploads/{upload_id}/chunk/",
        data=data[:200],
        content_type="application/octet-stream",
        HTTP_UPLOAD_OFFSET="0",
    )
    assert r1.status_code == 200 and r1.json()["received"] == 200
    wrong = api.put(
        f"/api/uploads/{upload_id}/chunk/",
        data=data[:10],
        content_type="application/octet-stream",
        HTTP_UPLOAD_OFFSET="0",
    )
    assert wrong.status_code == 409 and wrong.json()["received"] == 200
    assert api.get(f"/api/uploads/{upload_id}/").json()["received"] == 200
    api.put(
        f"/api/uploads/{upload_id}/chunk/",
        data=data[200:],
        content_type="application/octet-stream",
        HTTP_UPLOAD_OFFSET="200",
    )
    done = api.post(f"/api/uploads/{upload_id}/complete/")
    assert done.status_code == 202 and done.json()["duplicate_file"] is False
    run_job(done.json())
    contribution = api.get(f"/api/contributions/{done.json()['id']}/").json()
    assert contribution["records_new"] == 8 and contribution["records_invalid"] == 1
    assert contribution["job"]["status"] == "succeeded" and contribution["job"]["percent"] == 100.0
    errors = api.get(f"/api/contributions/{done.json()['id']}/errors/").json()["results"]
    assert errors[0]["line_no"] == 9 and "JSON" in errors[0]["message"]

    cur = client_for(curator)
    queue = cur.get(f"/api/datanets/{datanet.slug}/review-queue/?limit=5").json()
    assert len(queue["results"]) == 5 and queue["results"][0]["line_no"] == 1
    nxt = cur.get(f"/api/datanets/{datanet.slug}/review-queue/?after={queue['next_after']}").json()
    assert nxt["results"][0]["line_no"] == 6
    first = queue["results"][0]["id"]
    vote = cur.post(f"/api/records/{first}/votes/", {"decision": "approve"}, format="json")
    assert vote.status_code == 201 and vote.json()["status"] == "approved"
    again = cur.post(f"/api/records/{first}/votes/", {"decision": "approve"}, format="json")
    assert again.status_code == 409
    own = client_for(alice).post(f"/api/records/{first}/votes/", {"decision": "approve"}, format="json")
    assert own.status_code == 403 and "curators" in own.json()["detail"]

    owner = client_for(datanet.owner)
    snap = owner.post(f"/api/datanets/{datanet.slug}/snapshots/", {"notes": "v1"}, format="json")
    assert snap.status_code == 201 and snap.json()["record_count"] == 1 and len(snap.json()["root"]) == 64
    export = owner.post(f"/api/snapshots/{snap.json()['id']}/exports/", {"format": "jsonl"}, format="json")
    assert export.status_code == 202 and export.json()["ready"] is False
    services.snapshot_export_run(job_id=export.json()["job"]["id"])
    listed = owner.get(f"/api/snapshots/{snap.json()['id']}/exports/").json()
    assert listed[0]["ready"] and listed[0]["download_url"].endswith("/download/jsonl/")
    body = b"".join(owner.get(listed[0]["download_url"]).streaming_content)
    assert body.count(b"\n") == 1


def test_same_file_twice_via_api_is_not_counted_twice():
    datanet = DatanetFactory()
    api = client_for(UserFactory())
    from django.core.files.uploadedfile import SimpleUploadedFile

    content = jsonl(distinct_records(3))
    r1 = api.post(f"/api/datanets/{datanet.slug}/contributions/", {"file": SimpleUploadedFile("a.jsonl", content)})
    r2 = api.post(f"/api/datanets/{datanet.slug}/contributions/", {"file": SimpleUploadedFile("b.jsonl", content)})
    assert r1.status_code == 202 and r2.status_code == 200
    assert r2.json()["duplicate_file"] is True and "already uploaded" in r2.json()["message"]
    assert Contribution.objects.count() == 1


def test_paste_via_api_and_errors():
    datanet = DatanetFactory()
    api = client_for(UserFactory())
    resp = api.post(
        f"/api/datanets/{datanet.slug}/contributions/", {"text": jsonl(distinct_records(2)).decode()}, format="json"
    )
    assert resp.status_code == 202
    run_job(resp.json())
    assert Record.objects.count() == 2
    empty = api.post(f"/api/datanets/{datanet.slug}/contributions/", {"text": "  "}, format="json")
    assert empty.status_code == 400


def test_write_without_login_is_refused():
    datanet = DatanetFactory()
    resp = APIClient().post(
        f"/api/datanets/{datanet.slug}/uploads/", {"filename": "a.jsonl", "size": 10}, format="json"
    )
    assert resp.status_code in (401, 403)
    assert "credentials" in resp.json()["detail"].lower()


def test_revoked_token_is_refused():
    user = UserFactory()
    token, raw = account_services.token_create(user=user, name="old")
    account_services.token_revoke(user=user, token_id=token.pk)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    resp = api.post("/api/datanets/", {"title": "x", "domain": "y"}, format="json")
    assert resp.status_code == 401 and "revoked" in resp.json()["detail"]


def test_oversize_upload_is_refused(settings):
    settings.UPLOAD_MAX_BYTES = 100
    resp = client_for(UserFactory()).post(
        f"/api/datanets/{DatanetFactory().slug}/uploads/", {"filename": "a.jsonl", "size": 1000}, format="json"
    )
    assert resp.status_code == 413 and "limit" in resp.json()["detail"]


def test_non_curator_has_no_review_queue():
    datanet = DatanetFactory()
    resp = client_for(UserFactory()).get(f"/api/datanets/{datanet.slug}/review-queue/")
    assert resp.status_code == 403


def test_private_datanet_is_hidden():
    private = DatanetFactory(is_public=False)
    assert APIClient().get(f"/api/datanets/{private.slug}/").status_code == 404
    assert client_for(private.owner).get(f"/api/datanets/{private.slug}/").status_code == 200


def test_openapi_schema_and_docs_are_served_offline(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/datanets/" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger-ui" in docs.content
    assert b"cdn" not in docs.content.lower()


def test_error_pages_never_show_a_stack_trace(client):
    resp = client.get("/d/no-such-datanet/")
    assert resp.status_code == 404
    assert b"Traceback" not in resp.content and b"nothing at this address" in resp.content
    api = client.get("/api/records/999999/")
    assert api.status_code == 404 and "detail" in api.json()
