"""Rows the settlement tests build on: model versions, paid inferences with receipts, linked wallets."""

from __future__ import annotations

import hashlib
import itertools
import os
from typing import Any

from eth_account import Account

from accounts.models import User
from accounts.tests.factories import UserFactory
from attribution.models import Receipt, RecordValuation
from core.canonical import canonical_json, content_hash
from core.models import Job
from datanets.models import Contribution, Datanet, Record, Snapshot
from datanets.tests.factories import DatanetFactory
from models_factory.models import Inference, MLModel, ModelVersion, TrainingRun

_seq = itertools.count(1)


def linked_user(**fields: Any) -> User:
    """A user whose wallet is linked (the key is thrown away: these tests never sign as the user)."""
    user = UserFactory(**fields)
    user.wallet_address = Account.from_key(os.urandom(32)).address
    user.save(update_fields=["wallet_address"])
    return user


def model_version(datanet: Datanet | None = None, builder: User | None = None) -> ModelVersion:
    datanet = datanet or DatanetFactory()
    builder = builder or UserFactory()
    n = next(_seq)
    snapshot = Snapshot.objects.create(
        datanet=datanet,
        version=Snapshot.objects.filter(datanet=datanet).count() + 1,
        root="0" * 64,
        record_count=0,
        published_by=datanet.owner,
    )
    ml_model = MLModel.objects.create(
        name=f"model {n}", slug=f"model-{n}", kind=MLModel.Kind.CLASSIFIER, datanet=datanet, builder=builder
    )
    run = TrainingRun.objects.create(
        ml_model=ml_model,
        snapshot=snapshot,
        base_model="tiny",
        method="head",
        job=Job.objects.create(kind="train", status=Job.Status.SUCCEEDED),
        created_by=builder,
    )
    return ModelVersion.objects.create(
        ml_model=ml_model,
        version=1,
        run=run,
        snapshot=snapshot,
        snapshot_root=snapshot.root,
        base_model_id="tiny",
        base_model_sha256="0" * 64,
        method="head",
        artifact_location="-",
        deployed=True,
    )


def ppm_shares(weights: dict[User, int]) -> list[dict[str, Any]]:
    """Shares in ppm summing to exactly 1,000,000 (the last one takes the rounding), as receipts carry them."""
    total = sum(weights.values())
    users = sorted(weights, key=lambda u: u.username)
    shares, left = [], 1_000_000
    for i, user in enumerate(users):
        ppm = left if i == len(users) - 1 else 1_000_000 * weights[user] // total
        left -= ppm
        shares.append({"contributor": user.username, "share_ppm": ppm})
    return shares


def receipt(version: ModelVersion, shares: list[dict[str, Any]], fee: int = 10) -> Receipt:
    consumer = UserFactory()
    n = next(_seq)
    inference = Inference.objects.create(
        version=version,
        consumer=consumer,
        input={"text": f"call {n}"},
        input_hash=content_hash({"text": f"call {n}"}),
        output={"label": "positive"},
        fee=fee,
        latency_ms=1.0,
    )
    body = {"format": "test", "inference": str(inference.pk), "shares": shares, "fee": fee}
    return Receipt.objects.create(
        id=hashlib.sha256(canonical_json(body)).hexdigest(),
        inference=inference,
        version=version,
        method="gradient",
        body=body,
        fee=fee,
    )


def records_with_values(version: ModelVersion, values: dict[User, list[float]]) -> list[Record]:
    """Records of the version's Datanet by each user, with the given KNN-Shapley values."""
    datanet = version.ml_model.datanet
    made = []
    for user, vals in values.items():
        contribution = Contribution.objects.create(
            datanet=datanet,
            contributor=user,
            source="paste",
            filename="x.jsonl",
            file_sha256=os.urandom(32).hex(),
            blob_name="-",
            size_bytes=1,
        )
        for i, value in enumerate(vals):
            record = Record.objects.create(
                datanet=datanet,
                contribution=contribution,
                contributor=user,
                line_no=i + 1,
                data={"text": f"{user.username} {i}"},
                content_hash=os.urandom(32).hex(),
                status="approved",
            )
            RecordValuation.objects.create(version=version, record=record, knn_shapley=value)
            made.append(record)
    return made
