from __future__ import annotations

from typing import Any

from accounts.tests.factories import UserFactory
from core.canonical import content_hash
from datanets import services as datanet_services
from datanets.models import Contribution, Datanet, Record, Snapshot
from datanets.tests.factories import DatanetFactory


def snapshot_with(
    records: list[dict[str, Any]], *, validation_percent: int = 10, **datanet_fields: Any
) -> tuple[Datanet, Snapshot]:
    """A Datanet whose given records are all approved, published as version 1."""
    datanet = DatanetFactory(**datanet_fields)
    contributor = UserFactory()
    contribution = Contribution.objects.create(
        datanet=datanet,
        contributor=contributor,
        source="paste",
        filename="seed.jsonl",
        file_sha256=content_hash(records),
        blob_name="-",
        size_bytes=1,
    )
    Record.objects.bulk_create(
        [
            Record(
                datanet=datanet,
                contribution=contribution,
                contributor=contributor,
                line_no=i + 1,
                data=r,
                content_hash=content_hash(r),
                label=r.get("label", ""),
                status=Record.Status.APPROVED,
            )
            for i, r in enumerate(records)
        ]
    )
    snapshot = datanet_services.snapshot_publish(
        actor=datanet.owner, datanet=datanet, validation_percent=validation_percent
    )
    return datanet, snapshot


def sentiment_records(n: int = 24) -> list[dict[str, str]]:
    good = ["works great and I feel much better", "excellent results with no side effects", "very happy with it"]
    bad = ["terrible headaches and nausea every day", "made everything worse, awful", "stopped it after a week of pain"]
    return [
        {
            "text": f"{(good if i % 2 == 0 else bad)[i % 3]} (review {i})",
            "label": "positive" if i % 2 == 0 else "negative",
        }
        for i in range(n)
    ]


def qa_records(n: int = 16) -> list[dict[str, str]]:
    return [
        {"question": f"What is the capital of region {i}?", "answer": f"The capital of region {i} is Town{i}."}
        for i in range(n)
    ]
