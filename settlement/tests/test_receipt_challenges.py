"""Receipt challenges: anyone who can see a receipt recomputes it; a match changes nothing, a mismatch takes it
out of the open epoch's accrual until the owner or staff resolve it; the window closes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from accounts.models import AuditEvent, CreditAccount
from accounts.tests.factories import UserFactory
from attribution.models import Receipt
from attribution.tests.test_platform import build, labeled, paid_inference, trained_classifier
from models_factory.models import Inference
from settlement import rewards
from settlement.models import LedgerEntry, ReceiptAccrual, ReceiptChallenge

pytestmark = pytest.mark.django_db


@pytest.fixture
def accrued_receipt():
    version = trained_classifier(labeled(24))
    build(version)
    receipt = paid_inference(version, {"text": "made everything worse, awful headaches"}).receipt_obj
    assert receipt is not None
    rewards.receipts_accrue()
    assert ReceiptAccrual.objects.filter(receipt_id=receipt.id).exists()
    return receipt


def api_as(user) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


def test_a_matching_recompute_changes_nothing_and_a_mismatch_freezes_accrual_until_resolved(accrued_receipt) -> None:
    receipt = accrued_receipt
    anyone = UserFactory()
    ok = api_as(anyone).post(f"/api/receipts/{receipt.id}/challenges/")
    assert ok.status_code == 201 and ok.json()["status"] == "matched" and ok.json()["recomputed_id"] == receipt.id
    assert ReceiptAccrual.objects.filter(receipt_id=receipt.id).exists()

    # The stored inference is altered after the fact: the receipt no longer follows from the published data.
    Inference.objects.filter(pk=receipt.inference_id).update(input={"text": "works great, no side effects"})
    bad = api_as(anyone).post(f"/api/receipts/{receipt.id}/challenges/")
    body = bad.json()
    assert bad.status_code == 201 and body["status"] == "open" and body["recomputed_id"] != receipt.id
    assert body["differences"]  # the fields that no longer follow
    assert not ReceiptAccrual.objects.filter(receipt_id=receipt.id).exists()
    assert not LedgerEntry.objects.filter(receipt_id=receipt.id).exists()
    rewards.receipts_accrue()
    assert not ReceiptAccrual.objects.filter(receipt_id=receipt.id).exists()  # frozen
    assert AuditEvent.objects.filter(action="receipt.challenge.mismatch").exists()
    again = api_as(anyone).post(f"/api/receipts/{receipt.id}/challenges/")
    assert again.status_code == 409

    challenge_id = body["id"]
    stranger = api_as(anyone).post(
        f"/api/receipt-challenges/{challenge_id}/resolve/", {"decision": "uphold", "reason": "x"}, format="json"
    )
    assert stranger.status_code == 403
    owner = receipt.version.ml_model.datanet.owner
    resolved = api_as(owner).post(
        f"/api/receipt-challenges/{challenge_id}/resolve/",
        {"decision": "void", "reason": "The stored input was edited; the receipt cannot stand."},
        format="json",
    )
    assert resolved.status_code == 200 and resolved.json()["status"] == "voided"
    consumer = receipt.inference.consumer
    assert CreditAccount.objects.get(user=consumer).balance == 5  # the fee came back
    rewards.receipts_accrue()
    assert not ReceiptAccrual.objects.filter(receipt_id=receipt.id).exists()
    listed = APIClient().get(f"/api/receipts/{receipt.id}/challenges/").json()
    assert [c["status"] for c in listed] == ["voided", "matched"]


def test_an_upheld_challenge_accrues_again_and_the_window_closes(accrued_receipt, settings) -> None:
    receipt = accrued_receipt
    Inference.objects.filter(pk=receipt.inference_id).update(input={"text": "works great, no side effects"})
    challenge = api_as(UserFactory()).post(f"/api/receipts/{receipt.id}/challenges/").json()
    assert challenge["status"] == "open"
    staff = UserFactory(is_staff=True)
    api_as(staff).post(
        f"/api/receipt-challenges/{challenge['id']}/resolve/",
        {"decision": "uphold", "reason": "Checked the original input in the logs."},
        format="json",
    )
    assert ReceiptChallenge.objects.get(pk=challenge["id"]).status == "upheld"
    rewards.receipts_accrue()
    assert ReceiptAccrual.objects.filter(receipt_id=receipt.id).exists()
    Receipt.objects.filter(pk=receipt.id).update(created_at=receipt.created_at - timedelta(days=30))
    late = api_as(UserFactory()).post(f"/api/receipts/{receipt.id}/challenges/")
    assert late.status_code == 409 and "window" in late.json()["detail"]
