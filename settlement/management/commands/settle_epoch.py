from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import UserError
from settlement import anchoring, epochs, rewards
from settlement.models import Settlement


class Command(BaseCommand):
    help = "Settle a closed epoch on the configured chain (resumes a settlement that was interrupted)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("epoch", type=int)
        parser.add_argument("--close", action="store_true", help="close the epoch first if it is still open")
        parser.add_argument("--timeout", type=float, default=600.0)
        parser.add_argument(
            "--stop-after", choices=[s.value for s in Settlement.State], help="stop once this state is reached"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        number = options["epoch"]
        try:
            if options["close"] and rewards.epoch_get(number).status == "open":
                epochs.epoch_close(actor=None, number=number)
            settlement = anchoring.epoch_settle_start(actor=None, number=number)
        except UserError as exc:
            raise CommandError(exc.message) from None
        settlement = anchoring.settlement_run(
            settlement.pk, timeout=options["timeout"], stop_after=options["stop_after"]
        )
        self.stdout.write(
            f"epoch {number}: {settlement.state} root={settlement.root} tx={settlement.tx_hash or '-'} "
            f"block={settlement.block_number or '-'} gas={settlement.gas_used or '-'}"
        )
        if settlement.state == Settlement.State.FAILED:
            raise CommandError(settlement.alarm)
