"""The public explorer: what anyone may check without an account. Every read goes through the owning app's
selectors as an anonymous viewer, so a private Datanet's snapshots and receipts never appear here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.db.models import Q, QuerySet
from django.urls import reverse
from rest_framework import serializers

from attribution.models import Receipt
from attribution.selectors import receipts_visible
from core.errors import NotFound
from datanets.models import Snapshot
from datanets.selectors import datanet_ids_visible
from settlement import proofs
from settlement.models import Settlement

ANONYMOUS = AnonymousUser()
HEX64 = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def anchors() -> QuerySet[Settlement]:
    """Settlements whose root reached the chain (broadcast or later), newest epoch first."""
    return (
        Settlement.objects.select_related("epoch")
        .exclude(tx_hash="")
        .filter(state__in=[Settlement.State.BROADCAST, Settlement.State.MINED, Settlement.State.CONFIRMED])
        .order_by("-epoch__number")
    )


def dump_url(settlement: Settlement) -> str:
    return reverse("settlement:dump", args=[settlement.epoch.number])


def verify_command(settlement: Settlement, base_url: str = "") -> str:
    return f"python manage.py verify_epoch {settlement.epoch.number} --dump {base_url}{dump_url(settlement)}"


def receipts_public() -> QuerySet[Receipt]:
    return receipts_visible(ANONYMOUS).order_by("-created_at")


def receipt_public(receipt_id: str) -> Receipt:
    """A receipt of a public Datanet's model; any other answers like a missing one."""
    receipt = receipts_public().filter(pk=receipt_id.lower()).first()
    if receipt is None:
        raise NotFound(f"There is no public receipt {receipt_id!r}. Receipt ids are 64 hex characters.")
    return receipt


def snapshots_public() -> QuerySet[Snapshot]:
    return (
        Snapshot.objects.filter(datanet__in=datanet_ids_visible(ANONYMOUS))
        .select_related("datanet")
        .order_by("-published_at", "-id")
    )


def proposals_executed() -> list[dict[str, Any]]:
    """Executed governance proposals and their tallies. Governance has not landed yet: none so far."""
    return []


@dataclass
class SearchResult:
    query: str
    anchors: list[Settlement] = field(default_factory=list)
    receipts: list[Receipt] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    leaves: list[dict[str, Any]] = field(default_factory=list)
    proposals: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""

    @property
    def empty(self) -> bool:
        return not (self.anchors or self.receipts or self.snapshots or self.leaves or self.proposals)


def search(query: str) -> SearchResult:
    """By receipt id, snapshot root, anchored root, data hash, transaction hash, epoch number, or an address (a
    distributor, the anchoring account, or an account with a leaf in an anchored tree)."""
    q = query.strip()
    result = SearchResult(query=q)
    if not q:
        result.message = "Type a receipt id, a root, a transaction hash, an epoch number or an address."
        return result
    if q.isdigit():
        result.anchors = list(anchors().filter(epoch__number=int(q)))
    elif ADDRESS.match(q):
        low = q.lower()
        result.anchors = list(anchors().filter(Q(distributor__iexact=low) | Q(anchor_address__iexact=low)))
        for settlement in anchors().filter(state=Settlement.State.CONFIRMED):
            try:
                proof = proofs.proof_get(epoch_number=settlement.epoch.number, address=q)
            except (NotFound, OSError, ValueError):  # a dump that is missing or unreadable holds no leaf to show
                continue
            result.leaves.append(
                {"epoch": proof["epoch"], "address": proof["address"], "cumulative": proof["cumulative"]}
            )
    elif HEX64.match(q):
        bare = q.lower().removeprefix("0x")
        prefixed = "0x" + bare
        result.anchors = list(
            anchors().filter(Q(root__iexact=prefixed) | Q(data_hash__iexact=prefixed) | Q(tx_hash__iexact=prefixed))
        )
        result.receipts = list(receipts_public().filter(pk=bare))
        result.snapshots = list(snapshots_public().filter(root=bare))
    elif len(q) >= 6 and re.fullmatch(r"(0x)?[0-9a-fA-F]+", q):
        bare = q.lower().removeprefix("0x")
        result.receipts = list(receipts_public().filter(pk__startswith=bare)[:20])
        result.snapshots = list(snapshots_public().filter(root__startswith=bare)[:20])
        result.anchors = list(anchors().filter(Q(root__istartswith="0x" + bare) | Q(tx_hash__istartswith="0x" + bare)))
    else:
        result.message = (
            f"{q!r} is not an id, a root or an address: use 64 hex digits (a receipt id or a root), 0x and 40 hex "
            "digits (an address), or an epoch number."
        )
        return result
    if result.empty:
        result.message = f"Nothing public matches {q!r}."
    return result


class AnchorSerializer(serializers.Serializer):
    epoch = serializers.IntegerField(source="epoch.number")
    state = serializers.CharField()
    root = serializers.CharField()
    data_hash = serializers.CharField()
    tx_hash = serializers.CharField()
    block_number = serializers.IntegerField(allow_null=True)
    chain_id = serializers.IntegerField()
    distributor = serializers.CharField()
    leaves = serializers.IntegerField(source="leaf_count")
    confirmed_at = serializers.DateTimeField(allow_null=True)
    dump_url = serializers.SerializerMethodField()
    verify_command = serializers.SerializerMethodField()

    def _base(self) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri("/").rstrip("/") if request is not None else ""

    def get_dump_url(self, obj: Settlement) -> str:
        return self._base() + dump_url(obj)

    def get_verify_command(self, obj: Settlement) -> str:
        return verify_command(obj, self._base())


class PublicReceiptSerializer(serializers.Serializer):
    id = serializers.CharField()
    datanet = serializers.CharField(source="version.ml_model.datanet.slug")
    model = serializers.CharField(source="version.ml_model.slug")
    model_version = serializers.IntegerField(source="version.version")
    method = serializers.CharField()
    fee = serializers.CharField()
    created_at = serializers.DateTimeField()
    body = serializers.JSONField(help_text="The receipt as hashed (the consumer's input appears only as its hash).")


class PublicSnapshotSerializer(serializers.Serializer):
    datanet = serializers.CharField(source="datanet.slug")
    version = serializers.IntegerField()
    root = serializers.CharField()
    record_count = serializers.IntegerField()
    published_at = serializers.DateTimeField()


class LeafSerializer(serializers.Serializer):
    epoch = serializers.IntegerField()
    address = serializers.CharField()
    cumulative = serializers.CharField()


class SearchResultSerializer(serializers.Serializer):
    query = serializers.CharField()
    message = serializers.CharField()
    anchors = AnchorSerializer(many=True)
    receipts = PublicReceiptSerializer(many=True)
    snapshots = PublicSnapshotSerializer(many=True)
    leaves = LeafSerializer(many=True)
    proposals = serializers.ListField(child=serializers.DictField())
