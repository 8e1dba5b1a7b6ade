"""A contributor's credit, defined once: what the contributor page shows and what settlement pays by.

A receipt credits contributors through its ``shares``: one ``share_ppm`` per contributor, parts per million of the
contributors' part of the fee, summing to 1,000,000 (a duplicate cluster is credited once, flagged records and
abstaining receipts credit no one). Settlement splits each fee by exactly these shares (``settlement.splits``,
``amount_units``); the contributor page adds the same shares up. A citation's own ``credit_ppm`` (the record's
score over the top-k) is an explanation of the ranking, not credit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from accounts.models import User
from attribution.models import Citation, Receipt
from datanets.selectors import datanet_ids_visible

PPM = 1_000_000


def receipt_shares(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The receipt's contributor shares: ``{"contributor": username, "share_ppm": int}``, summing to 1,000,000
    (empty when the receipt credits no one)."""
    return [
        {"contributor": str(share["contributor"]), "share_ppm": int(share["share_ppm"])}
        for share in (body.get("shares") or [])
    ]


@dataclass
class DatanetCredit:
    datanet: str
    receipts: int = 0
    share_ppm: int = 0


@dataclass
class ContributorCredit:
    """A contributor's credit over every receipt that cites them: ``share_ppm`` in millionths of one receipt's
    contributors' part (2,500,000 = two and a half receipts' worth)."""

    receipts: int = 0
    share_ppm: int = 0
    by_datanet: list[DatanetCredit] = field(default_factory=list)


def contributor_credit(*, user: User, viewer: User | None = None) -> ContributorCredit:
    """Every receipt that cites the user; with a ``viewer``, only those of Datanets the viewer can see (a private
    Datanet's title and credit never reach a page an outsider reads)."""
    cited = Citation.objects.filter(contributor=user).values("receipt_id")
    receipts = Receipt.objects.filter(id__in=cited)
    if viewer is not None:
        receipts = receipts.filter(version__ml_model__datanet__in=datanet_ids_visible(viewer))
    rows = receipts.values_list("body", "version__ml_model__datanet__title")
    by_datanet: dict[str, DatanetCredit] = defaultdict(lambda: DatanetCredit(datanet=""))
    total = ContributorCredit()
    for body, title in rows.iterator(chunk_size=2000):
        share_ppm = sum(s["share_ppm"] for s in receipt_shares(body) if s["contributor"] == user.username)
        row = by_datanet[title]
        row.datanet = title
        row.receipts += 1
        row.share_ppm += share_ppm
        total.receipts += 1
        total.share_ppm += share_ppm
    total.by_datanet = sorted(by_datanet.values(), key=lambda r: (-r.share_ppm, r.datanet))
    return total
