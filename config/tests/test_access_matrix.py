"""Roles x objects: every Model Factory and attribution page and API endpoint, for each role, on a private and a
public Datanet. Each cell asserts the status, and that the private strings (the Datanet's title, a record's text, the
consumer's input) appear in no body where they must not.

Roles: anonymous, a signed-in stranger, the records' contributor, a curator, the owner, the model's builder, the
consumer who paid for an inference, and an admin. On the private Datanet the contributor, curator and builder are
members; the consumer was a member when they called the model and has left since (their receipt stays theirs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings
from django.urls import resolve
from rest_framework.test import APIClient

from accounts.credits import credits_grant
from accounts.models import User
from accounts.tests.factories import UserFactory
from attribution import indexes
from attribution.models import AttributionIndex, Flag, Receipt
from datanets.models import Datanet, Membership, Record
from models_factory import services as mf
from models_factory.models import ModelVersion
from models_factory.tests.factories import sentiment_records, snapshot_with
from settlement.models import ReceiptChallenge

pytestmark = pytest.mark.django_db

ROLES = ["anonymous", "stranger", "contributor", "curator", "owner", "builder", "consumer", "admin"]
TITLE = "Ward Seven Oncology Notes"
RECORD_MARK = "zqxrecordtext"
INPUT_MARK = "zqxconsumerinput patient Jane Roe"


@dataclass
class World:
    private: bool
    datanet: Datanet
    version: ModelVersion
    receipt: Receipt
    record: Record
    users: dict[str, User | None]
    flag: Flag | None = None
    matched_challenge: ReceiptChallenge | None = None

    def viewer(self, role: str) -> bool:
        """Who can see the Datanet (and so everything derived from it)."""
        return not self.private or role in {"contributor", "curator", "owner", "builder", "admin"}


def build_world(private: bool) -> World:
    tag = "private" if private else "public"
    records = [{**r, "text": f"{r['text']} {RECORD_MARK}{i}"} for i, r in enumerate(sentiment_records(24))]
    datanet, snapshot = snapshot_with(
        records, labels=["negative", "positive"], is_public=not private, title=f"{TITLE} {tag}", slug=f"ward7-{tag}"
    )
    record = Record.objects.filter(datanet=datanet).first()
    users: dict[str, User | None] = {
        "anonymous": None,
        "stranger": UserFactory(),
        "contributor": record.contributor,
        "curator": UserFactory(),
        "owner": datanet.owner,
        "builder": UserFactory(),
        "consumer": UserFactory(),
        "admin": UserFactory(is_staff=True, is_superuser=True),
    }
    Membership.objects.create(datanet=datanet, user=users["curator"], role=Membership.Role.CURATOR)
    for role in ("contributor", "builder", "consumer"):
        Membership.objects.create(datanet=datanet, user=users[role], role=Membership.Role.CONTRIBUTOR)
    builder = users["builder"]
    model = mf.model_create(builder=builder, datanet_slug=datanet.slug, name=f"Ward model {tag}")
    run = mf.training_run_create(
        actor=builder, ml_model=model, snapshot=snapshot, hyperparameters={"epochs": 1, "max_length": 32}
    )
    mf.training_run_execute(job_id=str(run.job_id))
    version = ModelVersion.objects.get(run=run)
    mf.version_deploy(actor=builder, version=version, deployed=True)
    indexes.index_build(job_id=str(AttributionIndex.objects.get(version=version).job_id))
    credits_grant(actor=None, user=users["consumer"], amount=5)
    inference = mf.infer(consumer=users["consumer"], version_id=version.pk, payload={"text": INPUT_MARK})
    assert inference.receipt_obj is not None, inference.attribution_message
    if private:  # the consumer has left the Datanet since the call
        Membership.objects.filter(datanet=datanet, user=users["consumer"]).delete()
    cited = inference.receipt_obj.citations.first().record
    receipt = inference.receipt_obj
    # Objects the write cells aim at, in states that refuse the write after the permission check (409): a dismissed
    # flag, a matched challenge, and an open mismatch that keeps new challenges of the receipt out.
    flag = Flag.objects.create(record=cited, version=version, status=Flag.Status.DISMISSED, severity=0.5)
    for status in (ReceiptChallenge.Status.MATCHED, ReceiptChallenge.Status.OPEN):
        ReceiptChallenge.objects.create(
            receipt_id=receipt.id, challenger=users["stranger"], recomputed_id=receipt.id, status=status
        )
    matched = ReceiptChallenge.objects.get(receipt_id=receipt.id, status=ReceiptChallenge.Status.MATCHED)
    return World(private, datanet, version, receipt, cited, users, flag, matched)


def client_for(world: World, role: str) -> APIClient:
    api = APIClient()
    user = world.users[role]
    if user is not None:
        api.force_login(user)
    return api


def body_of(response: Any) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode("latin-1")  # the test client closes the file after
    return response.content.decode()


def expectations(w: World, role: str) -> list[tuple[str, str, dict[str, Any] | None, int]]:
    """(method, url, data, expected status) for one role."""
    v, r, dn = w.version, w.receipt, w.datanet
    model, run = v.ml_model, v.run
    seen = 200 if w.viewer(role) else 404
    receipt_seen = 200 if w.viewer(role) or role == "consumer" else 404
    job_seen = 200 if role in {"builder", "owner", "admin"} else 404  # the Datanet's owner watches, read-only
    if not w.viewer(role):
        flags = 302 if role == "anonymous" else 404
    else:
        flags = 200 if role == "curator" else 302
    contributor = w.record.contributor.username
    cells = [
        ("get", "/models/", None, 200),
        ("get", model.get_absolute_url(), None, seen),
        ("get", run.get_absolute_url(), None, seen),
        ("get", v.get_absolute_url(), None, seen),
        ("get", f"/models/{model.slug}/v/{v.version}/download/", None, seen),
        ("get", r.get_absolute_url(), None, receipt_seen),
        ("get", f"/attribution/contributors/{contributor}/", None, 200),
        ("get", f"/attribution/flags/{dn.slug}/", None, flags),
        ("get", "/api/ml-models/", None, 200),
        ("get", f"/api/ml-models/{model.slug}/", None, seen),
        ("get", f"/api/ml-models/{model.slug}/versions/", None, seen),
        ("get", "/api/training-runs/", None, 200),
        ("get", f"/api/training-runs/{run.pk}/", None, seen),
        ("get", "/api/models/", None, 200),
        ("get", f"/api/models/{v.pk}/", None, seen),
        ("get", f"/api/models/{v.pk}/attribution/", None, seen),
        ("get", f"/api/receipts/{r.pk}/", None, receipt_seen),
        ("get", f"/api/records/{w.record.pk}/credit/", None, seen),
        ("get", f"/api/jobs/{run.job_id}/", None, job_seen),
        ("get", f"/api/datanets/{dn.slug}/valuing-version/", None, seen),
        ("get", f"/api/receipts/{r.pk}/challenges/", None, receipt_seen),
        # The explorer reads as an anonymous viewer: a private Datanet's receipt is missing there, whoever asks.
        ("get", f"/explorer/receipts/{r.pk}/", None, 404 if w.private else 200),
        ("get", f"/api/explorer/receipts/{r.pk}/", None, 404 if w.private else 200),
    ]
    if role == "anonymous":
        cells += [
            ("get", f"/api/datanets/{dn.slug}/flags/", None, 401),
            ("put", f"/api/datanets/{dn.slug}/valuing-version/", {"builders": ["nosuchuser"]}, 401),
            ("post", f"/api/flags/{w.flag.pk}/resolve/", {"decision": "confirm"}, 401),
            ("post", f"/attribution/valuing/{dn.slug}/", {"builders": "nosuchuser"}, 302),
            ("post", f"/api/receipts/{r.pk}/challenges/", {}, 401),
            ("post", f"/api/receipt-challenges/{w.matched_challenge.pk}/resolve/", {"decision": "uphold"}, 401),
            ("post", f"/rewards/receipts/{r.pk}/challenge/", {}, 302),
        ]
    cancel_run = {"builder": 409, "admin": 409}.get(role, 403)  # a finished run cannot be cancelled
    if role != "anonymous":
        # Writes that must not reach a private Datanet from outside: answered like a missing object.
        create = 201 if w.viewer(role) else 404
        train = {"builder": 202, "admin": 202}.get(role, 403) if w.viewer(role) else 404
        infer = 200 if w.viewer(role) else 404
        cells += [
            ("post", "/api/ml-models/", {"name": f"probe {role}", "datanet_slug": dn.slug}, create),
            (
                "post",
                "/api/training-runs/",
                {"model": model.slug, "snapshot": v.snapshot_id, "hyperparameters": {"epochs": 1}},
                train,
            ),
            ("post", f"/api/models/{v.pk}/infer/", {"text": "fine"}, infer),
            # Writes sent with a body refused after the visibility check, so the world stays as it is: viewers are
            # sent back with a message (302), outsiders get a 404 like a missing object.
            ("post", "/models/new/", {"datanet": "", "name": ""}, 302),
            ("post", f"/models/{model.slug}/train/", {"epochs": "many"}, 302 if w.viewer(role) else 404),
            ("post", f"/models/runs/{run.pk}/cancel/", {}, 302 if w.viewer(role) else 404),
            ("post", f"/models/{model.slug}/v/{v.version}/deploy/", {"deployed": "1"}, 302 if w.viewer(role) else 404),
            ("post", f"/api/training-runs/{run.pk}/cancel/", {}, cancel_run if w.viewer(role) else 404),
            ("post", f"/api/models/{v.pk}/deploy/", {"deployed": True, "price_credits": 0}, 400),
            ("post", f"/api/jobs/{run.job_id}/cancel/", {}, {"owner": 403}.get(role, job_seen)),
            # Flags and the valuing version: curators review flags, the owner designates the valuer.
            (
                "get",
                f"/api/datanets/{dn.slug}/flags/",
                None,
                (200 if role == "curator" else 403) if w.viewer(role) else 404,
            ),
            (
                "put",
                f"/api/datanets/{dn.slug}/valuing-version/",
                {"builders": ["nosuchuser"]},
                (400 if role == "owner" else 403) if w.viewer(role) else 404,  # the owner only, not staff
            ),
            (
                "post",
                f"/api/flags/{w.flag.pk}/resolve/",
                {"decision": "confirm"},
                (409 if role == "curator" else 403) if w.viewer(role) else 404,
            ),
            ("post", f"/attribution/valuing/{dn.slug}/", {"builders": "nosuchuser"}, 302 if w.viewer(role) else 404),
            # Receipt challenges: anyone who sees the receipt may challenge it; its Datanet's owner or staff resolve.
            ("post", f"/api/receipts/{r.pk}/challenges/", {}, 409 if role == "consumer" or w.viewer(role) else 404),
            (
                "post",
                f"/api/receipt-challenges/{w.matched_challenge.pk}/resolve/",
                {"decision": "uphold", "reason": "checked"},
                (409 if role in {"owner", "admin"} else 403) if receipt_seen == 200 else 404,
            ),
            # The page's button answers every refusal with a message on a redirect, a missing receipt's too.
            ("post", f"/rewards/receipts/{r.pk}/challenge/", {}, 302),
        ]
    return cells


def forbidden_strings(w: World, role: str) -> dict[str, str]:
    """What must not appear in any body this role receives."""
    out = {"server path": str(settings.VAR_DIR)}
    if not w.viewer(role):
        out.update({"title": w.datanet.title, "record text": RECORD_MARK})
    if role not in {"consumer", "admin"}:
        out["consumer input"] = INPUT_MARK
    return out


# The URL names the cells request (test_access_matrix_datanets checks that every URL pattern is in a matrix).
COVERED = {
    "models_factory:list", "models_factory:model", "models_factory:run", "models_factory:version",
    "models_factory:download", "attribution:receipt", "attribution:contributor", "attribution:flags",
    "api:ml-model-list", "api:ml-model-detail", "api:ml-model-versions", "api:training-run-list",
    "api:training-run-detail", "api:model-version-list", "api:model-version-detail", "api:attribution-index",
    "api:receipt-detail", "api:record-credit", "api:job-detail", "api:model-version-infer",
    "models_factory:create", "models_factory:train", "models_factory:run_cancel", "models_factory:deploy",
    "api:training-run-cancel", "api:model-version-deploy", "api:job-cancel",
    "api:datanet-flags", "api:datanet-valuing-version", "api:flag-resolve", "attribution:valuer",
    "api:receipt-challenges", "api:receipt-challenge-resolve", "settlement:receipt-challenge",
    "watch:explorer-receipt", "api:explorer-receipt",
}  # fmt: skip


@pytest.mark.parametrize("private", [True, False], ids=["private", "public"])
def test_every_role_sees_only_what_it_may(private: bool) -> None:
    w = build_world(private)
    failures: list[str] = []
    for role in ROLES:
        user = w.users[role]
        if user is not None:
            credits_grant(actor=None, user=user, amount=5)
        api = client_for(w, role)
        for method, url, data, expected in expectations(w, role):
            call = getattr(api, method)
            if data is None:
                response = call(url)
            else:  # pages take form posts, the API JSON
                response = call(url, data, format="json") if url.startswith("/api/") else call(url, data)
            if response.status_code != expected:
                failures.append(f"{role:11} {method.upper()} {url}: {response.status_code}, expected {expected}")
            text = body_of(response)
            for what, secret in forbidden_strings(w, role).items():
                if secret in text:
                    failures.append(f"{role:11} {method.upper()} {url}: the {what} is in the body")
    requested = {resolve(url).view_name for role in ROLES for _, url, _, _ in expectations(w, role)}
    assert requested == COVERED, (sorted(requested - COVERED), sorted(COVERED - requested))
    assert not failures, "\n".join(failures)


def test_the_consumer_and_staff_see_the_input_and_contributors_see_hashes() -> None:
    w = build_world(private=False)
    page = {role: body_of(client_for(w, role).get(w.receipt.get_absolute_url())) for role in ROLES}
    assert INPUT_MARK in page["consumer"] and INPUT_MARK in page["admin"]
    for role in ("anonymous", "contributor", "builder", "owner"):
        assert INPUT_MARK not in page[role] and w.receipt.body["input_hash"] in page[role], role
    # Viewers of the Datanet read the cited records' text; the model list names the Datanet to them.
    assert RECORD_MARK in page["contributor"]
    assert w.datanet.title in body_of(client_for(w, "anonymous").get("/models/"))


def test_a_consumer_outside_a_private_datanet_sees_their_receipt_but_no_record_text() -> None:
    w = build_world(private=True)
    page = body_of(client_for(w, "consumer").get(w.receipt.get_absolute_url()))
    assert INPUT_MARK in page and RECORD_MARK not in page and w.datanet.title not in page
    assert w.datanet.title in body_of(client_for(w, "curator").get("/models/"))
