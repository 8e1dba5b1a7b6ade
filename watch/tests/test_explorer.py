"""The public explorer: anchors, receipts by id, snapshot roots, executed proposals, search; nothing private."""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone
from eth_account import Account
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from core.canonical import canonical_json
from datanets.models import Membership, Snapshot
from datanets.tests.factories import DatanetFactory
from settlement.anchor_tree import ENCODING, StandardMerkleTree
from settlement.models import Epoch, Settlement
from settlement.tests.factories import model_version, ppm_shares, receipt

pytestmark = pytest.mark.django_db


def hex64() -> str:
    return os.urandom(32).hex()


@pytest.fixture
def world() -> dict[str, Any]:
    """A public and a private Datanet, each with a snapshot and a receipt, and one anchored epoch."""
    made: dict[str, Any] = {}
    for kind in ("public", "private"):
        datanet = DatanetFactory(is_public=kind == "public", title=f"{kind} datanet")
        version = model_version(datanet)
        snapshot = Snapshot.objects.create(
            datanet=datanet, version=2, root=hex64(), record_count=3, published_by=datanet.owner
        )
        made[kind] = {
            "datanet": datanet,
            "snapshot": snapshot,
            "receipt": receipt(version, ppm_shares({datanet.owner: 1})),
            "member": UserFactory(),
        }
        Membership.objects.create(datanet=datanet, user=made[kind]["member"], role=Membership.Role.CURATOR)
    now = timezone.now()
    epoch = Epoch.objects.create(number=1, status=Epoch.Status.SETTLED, opened_at=now, closed_at=now, settled_at=now)
    made["anchor"] = Settlement.objects.create(
        epoch=epoch,
        state=Settlement.State.CONFIRMED,
        chain_id=31337,
        distributor="0x" + "ab" * 20,
        anchor_address="0x" + "cd" * 20,
        root="0x" + hex64(),
        data_hash="0x" + hex64(),
        tx_hash="0x" + hex64(),
        block_number=42,
        leaf_count=7,
        dump_name="dumps/epoch-1.json",
    )
    return made


def anchor_with_leaf(settlement: Settlement, address: str, cumulative: int) -> None:
    """Give the anchor a real published dump whose tree holds one leaf (as the settlement's tree step writes it)."""
    tree = StandardMerkleTree.of([[address, cumulative]], ENCODING)
    name = default_storage.save("settlement/test-dump.json", ContentFile(canonical_json({"tree": tree.dump()})))
    Settlement.objects.filter(pk=settlement.pk).update(dump_name=name, root=tree.root)


def viewers(world: dict[str, Any]) -> dict[str, APIClient]:
    """Anonymous, a stranger, the private Datanet's owner and curator, staff: the explorer shows all the same."""
    clients = {"anonymous": APIClient()}
    for name, user in {
        "stranger": UserFactory(),
        "private owner": world["private"]["datanet"].owner,
        "private curator": world["private"]["member"],
        "staff": UserFactory(is_staff=True, is_superuser=True),
    }.items():
        client = APIClient()
        client.force_login(user)
        clients[name] = client
    return clients


def test_roles_by_objects_no_private_object_appears_anywhere(world):
    public, private = world["public"], world["private"]
    for who, client in viewers(world).items():
        index = client.get(reverse("watch:explorer")).content.decode()
        assert public["snapshot"].root in index and public["receipt"].pk[:17] in index, who
        assert world["anchor"].root in index and world["anchor"].tx_hash in index, who
        assert private["snapshot"].root not in index and private["receipt"].pk[:17] not in index, who
        assert private["datanet"].title not in index, who
        for obj, hidden in ((public, False), (private, True)):
            by_root = client.get(reverse("watch:explorer-search"), {"q": obj["snapshot"].root}).content.decode()
            assert ('data-testid="snapshots"' in by_root) is not hidden, who  # the query itself is echoed back
            assert (obj["datanet"].title in by_root) is not hidden, who
            receipt_page = client.get(reverse("watch:explorer-receipt", args=[obj["receipt"].pk]))
            assert receipt_page.status_code == (404 if hidden else 200), who
            found = client.get("/api/explorer/search/", {"q": obj["receipt"].pk}).json()
            assert [r["id"] for r in found["receipts"]] == ([] if hidden else [obj["receipt"].pk]), who
            api_receipt = client.get(f"/api/explorer/receipts/{obj['receipt'].pk}/")
            assert api_receipt.status_code == (404 if hidden else 200), who
        roots = [s["root"] for s in client.get("/api/explorer/snapshots/").json()]
        assert public["snapshot"].root in roots and private["snapshot"].root not in roots, who


def test_a_receipt_page_shows_the_body_but_never_the_consumers_input(world):
    r = world["public"]["receipt"]
    page = APIClient().get(reverse("watch:explorer-receipt", args=[r.pk])).content.decode()
    assert r.pk in page and "recompute_receipt" in page
    assert r.inference.input["text"] not in page
    body = APIClient().get(f"/api/explorer/receipts/{r.pk}/").json()
    assert body["body"] == r.body and r.inference.input["text"] not in str(body)


def test_anchors_carry_everything_needed_to_verify(world):
    a = world["anchor"]
    [row] = APIClient().get("/api/explorer/anchors/").json()
    assert row["root"] == a.root and row["tx_hash"] == a.tx_hash and row["block_number"] == 42
    assert row["data_hash"] == a.data_hash and row["leaves"] == 7
    assert row["dump_url"].endswith("/rewards/epochs/1/dump.json")
    assert row["verify_command"] == f"python manage.py verify_epoch 1 --dump {row['dump_url']}"
    page = APIClient().get(reverse("watch:explorer")).content.decode()
    assert "python manage.py verify_epoch 1 --dump http://testserver/rewards/epochs/1/dump.json" in page


@pytest.mark.parametrize("field", ["root", "tx_hash", "data_hash", "distributor", "epoch"])
def test_search_finds_an_anchor_by_root_hash_address_or_epoch(world, field):
    a = world["anchor"]
    q = "1" if field == "epoch" else getattr(a, field).upper().replace("0X", "0x")
    found = APIClient().get("/api/explorer/search/", {"q": q}).json()
    assert [x["epoch"] for x in found["anchors"]] == [1]


def test_search_by_an_account_address_finds_its_leaf_in_anchored_trees(world):
    address = Account.create().address
    anchor_with_leaf(world["anchor"], address, 5 * 10**18)
    found = APIClient().get("/api/explorer/search/", {"q": address.lower()}).json()
    assert found["leaves"] == [{"epoch": 1, "address": address, "cumulative": str(5 * 10**18)}]
    assert APIClient().get("/api/explorer/search/", {"q": Account.create().address}).json()["leaves"] == []


def test_search_explains_what_it_did_not_understand_and_proposals_are_an_empty_list(world):
    answer = APIClient().get("/api/explorer/search/", {"q": "hello"}).json()
    assert "not an id, a root or an address" in answer["message"] and answer["anchors"] == []
    nothing = APIClient().get("/api/explorer/search/", {"q": hex64()}).json()
    assert nothing["message"].startswith("Nothing public matches")
    assert APIClient().get("/api/explorer/proposals/").json() == []
    assert "No proposal has been executed yet" in APIClient().get(reverse("watch:explorer")).content.decode()
