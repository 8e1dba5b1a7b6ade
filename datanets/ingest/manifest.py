"""The Merkle root of a snapshot's records, recomputable by anyone from the published record hashes.

Construction:
1. Leaves are the records' content hashes (SHA-256 of the record's canonical JSON), 32 bytes each, in canonical
   order: the hex strings sorted ascending. The functions here take the leaves in the order given; a snapshot
   passes them sorted.
2. Each level pairs neighbours left to right: parent = SHA-256(left || right), over the 64 raw bytes.
3. When a level has an odd number of nodes, the last one is carried up to the next level unchanged.
4. The root is the single node left. The root of one leaf is that leaf; the root of no leaves is SHA-256(b"").

A proof for leaf i lists, from the bottom up, each sibling's hex hash and the side it sits on: "L" means the
sibling is the left input (parent = SHA-256(sibling || node)), "R" the right one. Levels where the node is carried
up unchanged add no step.

In Python:
    level = [bytes.fromhex(h) for h in sorted(hashes)]
    while len(level) > 1:
        level = [sha256(level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)] + (
            [level[-1]] if len(level) % 2 else [])
    root = level[0].hex() if level else sha256(b"").hexdigest()
"""

from __future__ import annotations

import hashlib
from typing import Literal

_sha256 = hashlib.sha256


def _leaves(hex_hashes: list[str]) -> list[bytes]:
    leaves = []
    for position, value in enumerate(hex_hashes):
        if len(value) != 64:
            raise ValueError(f"leaf {position} is not a 64-character hex SHA-256: {value!r}")
        leaves.append(bytes.fromhex(value))
    return leaves


def _next_level(level: list[bytes]) -> list[bytes]:
    parents = [_sha256(left + right).digest() for left, right in zip(level[0::2], level[1::2], strict=False)]
    if len(level) % 2:
        parents.append(level[-1])
    return parents


def merkle_root_sha256(hex_hashes: list[str]) -> str:
    if not hex_hashes:
        return _sha256(b"").hexdigest()
    level = _leaves(hex_hashes)
    while len(level) > 1:
        level = _next_level(level)
    return level[0].hex()


def merkle_proof(hex_hashes: list[str], index: int) -> list[tuple[str, Literal["L", "R"]]]:
    if not 0 <= index < len(hex_hashes):
        raise IndexError(f"leaf index {index} is outside 0..{len(hex_hashes) - 1}")
    level = _leaves(hex_hashes)
    proof: list[tuple[str, Literal["L", "R"]]] = []
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            proof.append((level[sibling].hex(), "L" if sibling < index else "R"))
        level = _next_level(level)
        index //= 2
    return proof


def verify_proof(leaf: str, proof: list[tuple[str, str]], root: str) -> bool:
    """True when `proof` leads from `leaf` to `root`; malformed input is simply not a valid proof."""
    try:
        node = bytes.fromhex(leaf)
        for sibling_hex, side in proof:
            sibling = bytes.fromhex(sibling_hex)
            if len(sibling) != 32:
                return False
            if side == "L":
                node = _sha256(sibling + node).digest()
            elif side == "R":
                node = _sha256(node + sibling).digest()
            else:
                return False
        return len(node) == 32 and node.hex() == root.lower()
    except (ValueError, TypeError):
        return False
