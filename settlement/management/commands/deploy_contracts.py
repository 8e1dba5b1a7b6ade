"""Deploy the token and the distributor on the chain named by CHAIN_RPC_URL, and print the lines for .env.

The platform deploys contracts by itself only on the embedded chain of a development run; any other chain is set
up once by its operator with this command, then named by CHAIN_DISTRIBUTOR_ADDRESS and CHAIN_TOKEN_ADDRESS.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from settlement.chain import client


class Command(BaseCommand):
    help = "Deploy the reward token and distributor on CHAIN_RPC_URL (deployer key from DEPLOYER_KEY)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--fund", type=int, default=0, help="token base units to mint to the distributor")

    def handle(self, *args: Any, fund: int, **options: Any) -> None:
        url = str(settings.CHAIN_RPC_URL or "")
        if not url:
            raise CommandError("CHAIN_RPC_URL is not set: name the node to deploy on.")
        deployer = os.environ.get("DEPLOYER_KEY", "")
        if not deployer:
            raise CommandError(
                "DEPLOYER_KEY is not set: the key that pays for the deployment and holds the admin role."
            )
        if not settings.CHAIN_ANCHOR_KEY:
            raise CommandError("CHAIN_ANCHOR_KEY is not set: the distributor grants its anchor role to that key.")
        try:
            web3 = client.connect(url)
            deployed = client.deploy_contracts(
                web3, deployer, anchorer=client.address_of(settings.CHAIN_ANCHOR_KEY), fund_distributor=fund
            )
        except client.ChainUnavailable as exc:
            raise CommandError(f"The chain at {url} did not answer: {exc}") from None
        self.stdout.write(f"Deployed on chain {deployed.chain_id}. Add to your environment (.env):\n")
        self.stdout.write(f"CHAIN_DISTRIBUTOR_ADDRESS={deployed.distributor}\nCHAIN_TOKEN_ADDRESS={deployed.token}\n")
