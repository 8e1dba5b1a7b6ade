"""Verification without the database: recompute a published dump's root and totals and compare them with the chain.

What ``manage.py verify_epoch`` runs, and what anyone can run on a downloaded dump.
"""

from __future__ import annotations

import json

from web3 import Web3

from settlement.anchor_tree import ENCODING
from settlement.chain import client
from settlement.merkle import StandardMerkleTree, keccak256


def verify_dump(dump_body: bytes, *, web3: Web3, epoch: int, distributor: str | None = None) -> list[str]:
    """Recompute the root from a published dump and compare it with the chain. Returns problems (empty = agrees)."""
    problems: list[str] = []
    dump = json.loads(dump_body)
    if dump.get("epoch") != epoch:
        problems.append(f"the dump is for epoch {dump.get('epoch')}, not {epoch}")
    values = [(v["value"][0], int(v["value"][1])) for v in dump["tree"]["values"]]
    recomputed = StandardMerkleTree.of(values, ENCODING)
    try:
        StandardMerkleTree.load(dump["tree"])
    except ValueError as exc:
        problems.append(f"the dump's tree is not a valid Merkle tree of its values: {exc}")
    if recomputed.root != dump["root"]:
        problems.append(f"the dump says root {dump['root']} but its values give {recomputed.root}")
    total = sum(amount for _, amount in values)
    if str(total) != dump["total_cumulative"]:
        problems.append(f"the leaves add up to {total}, the dump says {dump['total_cumulative']}")
    distributor = distributor or dump["distributor"]
    onchain_root = client.onchain_root(web3, distributor, epoch)
    if onchain_root is None:
        problems.append(f"epoch {epoch} is not anchored at {distributor}")
    elif onchain_root.lower() != recomputed.root.lower():
        problems.append(f"the chain holds root {onchain_root} for epoch {epoch}, the dump gives {recomputed.root}")
    contract = client.distributor_contract(web3, distributor)
    events = client.call(lambda: contract.events.Anchored().get_logs(from_block=0, argument_filters={"epoch": epoch}))
    if events:
        args = events[0]["args"]
        data_hash = "0x" + keccak256(dump_body).hex()
        if "0x" + bytes(args["dataHash"]).hex() != data_hash:
            problems.append(
                f"the anchored data hash is 0x{bytes(args['dataHash']).hex()}, the dump hashes to {data_hash}"
            )
        if int(args["totalCumulative"]) != total:
            problems.append(f"the anchored total is {args['totalCumulative']}, the leaves add up to {total}")
    return problems
