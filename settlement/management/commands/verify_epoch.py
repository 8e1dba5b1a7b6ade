from __future__ import annotations

from pathlib import Path
from typing import Any

import requests
from django.core.management.base import BaseCommand, CommandError, CommandParser

from settlement.chain import client
from settlement.chain import config as chain_config
from settlement.verification import verify_dump


class Command(BaseCommand):
    help = (
        "Recompute an epoch's Merkle root from its published dump and check it, the data hash and the total against "
        "the chain. Needs no database when given --dump and --rpc."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("epoch", type=int)
        parser.add_argument("--dump", required=True, help="a dump file, or its URL (/rewards/epochs/<n>/dump.json)")
        parser.add_argument("--rpc", default="", help="JSON-RPC URL of the chain (default: the configured chain)")
        parser.add_argument("--distributor", default="", help="distributor address (default: the dump's)")

    def handle(self, *args: Any, **options: Any) -> None:
        source = options["dump"]
        if source.startswith(("http://", "https://")):
            response = requests.get(source, timeout=60)
            if response.status_code != 200:
                raise CommandError(f"{source} answered {response.status_code}")
            body = response.content
        else:
            path = Path(source)
            if not path.is_file():
                raise CommandError(f"{source} is not a file")
            body = path.read_bytes()
        if options["rpc"]:
            web3 = client.connect(options["rpc"])
        else:
            web3 = chain_config.w3()
        try:
            problems = verify_dump(body, web3=web3, epoch=options["epoch"], distributor=options["distributor"] or None)
        except client.ChainUnavailable as exc:
            raise CommandError(str(exc)) from None
        if problems:
            for problem in problems:
                self.stderr.write(f"MISMATCH: {problem}")
            raise CommandError(f"epoch {options['epoch']} does not verify ({len(problems)} problem(s))")
        self.stdout.write(f"epoch {options['epoch']}: OK: the dump's root, data hash and total match the chain")
