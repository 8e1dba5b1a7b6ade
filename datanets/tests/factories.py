from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import factory

from accounts.models import User
from accounts.tests.factories import UserFactory
from core.canonical import content_hash
from datanets import services
from datanets.models import Contribution, Datanet, Membership, Record, Snapshot


class DatanetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Datanet

    owner = factory.SubFactory(UserFactory)
    title = factory.Sequence(lambda n: f"Datanet {n}")
    slug = factory.Sequence(lambda n: f"datanet-{n}")
    domain = "support"
    record_kind = "labeled_text"
    labels = ["negative", "positive"]
    approvals_needed = 2
    rejections_needed = 2


def add_curators(datanet: Datanet, n: int = 2) -> list[User]:
    curators = [UserFactory() for _ in range(n)]
    for user in curators:
        Membership.objects.create(datanet=datanet, user=user, role=Membership.Role.CURATOR)
    return curators


def jsonl(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def ingest(
    user: User,
    datanet: Datanet,
    content: bytes,
    filename: str,
    tmp_path: Path,
    column_map: dict[str, str] | None = None,
) -> tuple[Contribution, bool]:
    """Upload a file through the service and run its ingestion job in this process (the service is the unit)."""
    path = tmp_path / f"upload-{len(list(tmp_path.iterdir()))}"
    path.write_bytes(content)
    result = services.contribution_from_path(
        user=user, datanet=datanet, path=path, filename=filename, column_map=column_map
    )
    if result.created:
        services.contribution_ingest(job_id=str(result.contribution.job_id))
    result.contribution.refresh_from_db()
    return result.contribution, result.created


REVIEWS = [
    "The support agent answered within minutes and solved my billing problem completely.",
    "I waited three days for a reply and the answer did not address my question at all.",
    "Setup was simple, the documentation is clear and the product works as described.",
    "The app crashes every time I open the settings page on my phone, very frustrating.",
    "Great value for the price, I would recommend this service to my friends and family.",
    "Refund took two months and I had to call five times before anyone helped me out.",
]


def review_records(n: int = 6) -> list[dict[str, str]]:
    return [
        {
            "text": f"{REVIEWS[i % len(REVIEWS)]} Ticket {i} about order number {1000 + i * 7}.",
            "label": "positive" if i % 2 == 0 else "negative",
        }
        for i in range(n)
    ]


WORDS = (
    "account billing refund delivery package courier warehouse invoice discount coupon battery screen keyboard "
    "charger login password update install crash freeze error timeout network signal router modem printer "
    "scanner camera speaker headset cable adapter firmware license renewal subscription upgrade downgrade "
    "cancel transfer balance statement payment card bank wallet address phone email chat ticket agent manager"
).split()


def distinct_records(n: int, *, seed: int = 7, words: int = 24) -> list[dict[str, str]]:
    """n labeled records whose texts share too few word 3-shingles to be near duplicates of each other."""
    import random

    rng = random.Random(seed)
    return [
        {
            "text": " ".join(rng.choice(WORDS) for _ in range(words)) + f" case {i}",
            "label": "positive" if i % 2 == 0 else "negative",
        }
        for i in range(n)
    ]


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
    snapshot = services.snapshot_publish(actor=datanet.owner, datanet=datanet, validation_percent=validation_percent)
    return datanet, snapshot
