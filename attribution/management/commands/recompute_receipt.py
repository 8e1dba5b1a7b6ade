from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from attribution.receipts import receipt_get, receipt_recompute
from core.errors import UserError


class Command(BaseCommand):
    help = "Recompute a receipt from the published snapshot and model artifact and check its id and scores."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("receipt_id")
        parser.add_argument("--show", action="store_true", help="print the recomputed body")

    def handle(self, *args: Any, receipt_id: str, show: bool, **options: Any) -> None:
        try:
            stored = receipt_get(receipt_id)
            body, rid = receipt_recompute(receipt_id)
        except UserError as exc:
            raise CommandError(exc.message) from None
        if show:
            self.stdout.write(json.dumps(body, indent=2, sort_keys=True))
        if rid != stored.id:
            diffs = [k for k in body if body[k] != stored.body.get(k)]
            raise CommandError(f"MISMATCH: recomputed id {rid} differs in {', '.join(diffs) or 'encoding'}")
        self.stdout.write(self.style.SUCCESS(f"OK: recomputed receipt {rid} matches ({len(body['top_k'])} records)"))
