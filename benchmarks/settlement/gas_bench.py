"""Gas of anchor (flat in the number of accounts) and of first and repeat claims on 1k, 100k and 1M-account trees,
beside Uniswap's MerkleDistributor (82-95k per one-shot claim).

    .venv/bin/python -m benchmarks.settlement.gas_bench [--chain embedded|anvil] [--sizes 1000,100000,1000000]
"""

from __future__ import annotations

import argparse
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager

from web3 import Web3

from benchmarks.settlement.machine import describe
from settlement.chain import client
from settlement.chain.anvil import anvil_node
from settlement.chain.embedded import DEV_KEYS
from settlement.merkle import StandardMerkleTree

UNISWAP = "Uniswap MerkleDistributor claim: 82k-95k (one-shot, no repeat claims)"


@contextmanager
def chain(kind: str) -> Iterator[Web3]:
    if kind == "anvil":
        with anvil_node() as node:
            yield client.connect(node.url)
    else:
        yield client.connect(None, None)


def measure(w3: Web3, n: int) -> dict[str, int]:
    deployment = client.deploy_contracts(w3, DEV_KEYS[0], fund_distributor=10**30)
    rng = random.Random(n)
    addresses = ["0x" + rng.randbytes(20).hex() for _ in range(n)]
    amounts = [rng.randrange(10**18, 10**24) for _ in range(n)]
    account = rng.randrange(n)
    gas: dict[str, int] = {}
    for epoch, bonus in ((1, 0), (2, 10**18)):
        tree = StandardMerkleTree.of(
            [(a, v + bonus) for a, v in zip(addresses, amounts, strict=True)], ["address", "uint256"]
        )
        receipt = client.anchor(w3, deployment.distributor, DEV_KEYS[0], epoch=epoch, root=tree.root,
                                data_hash=os.urandom(32), total_cumulative=sum(amounts) + n * bonus)  # fmt: skip
        gas[f"anchor{epoch}"] = receipt["gasUsed"]
        receipt = client.claim(w3, deployment.distributor, DEV_KEYS[1], account=addresses[account], epoch=epoch,
                               cumulative_amount=amounts[account] + bonus, proof=tree.get_proof(account))  # fmt: skip
        gas[f"claim{epoch}"] = receipt["gasUsed"]
        gas["proof"] = len(tree.get_proof(account))
    return gas


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chain", choices=["embedded", "anvil"], default="embedded")
    parser.add_argument("--sizes", default="1000,100000,1000000")
    args = parser.parse_args()
    print(describe())
    print(f"chain: {args.chain}\n")
    print(f"{'accounts':>10} {'proof len':>9} {'1st anchor':>10} {'anchor':>8} {'1st claim':>10} {'repeat claim':>13}")
    with chain(args.chain) as w3:
        for n in [int(s) for s in args.sizes.split(",")]:
            g = measure(w3, n)
            print(
                f"{n:>10,} {g['proof']:>9} {g['anchor1']:>10,} {g['anchor2']:>8,} {g['claim1']:>10,} {g['claim2']:>13,}"
            )
    print(f"\n{UNISWAP}")
    print("'1st anchor' is the contract's first ever (lastEpoch goes from zero); 'anchor' is every later epoch.")


if __name__ == "__main__":
    main()
