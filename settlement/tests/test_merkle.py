"""settlement.merkle against known vectors, its own slow paths, and (with node) @openzeppelin/merkle-tree itself."""

from __future__ import annotations

import json
import os
import random
import subprocess
from typing import Any

import numpy as np
import pytest

from settlement import merkle
from settlement.merkle import StandardMerkleTree, keccak256, leaf_hash, verify
from settlement.tests.conftest import CONTRACTS_DIR, node_with

ENCODING = ["address", "uint256"]
# the example in @openzeppelin/merkle-tree's README, and the root that library gives for it
README_VALUES = [
    ["0x1111111111111111111111111111111111111111", "5000000000000000000"],
    ["0x2222222222222222222222222222222222222222", "2500000000000000000"],
]
README_ROOT = "0xd4dee0beab2d53f2cc83e567171bd2820e49898130a22622b10ead383e90bd77"


def random_values(n: int, seed: int = 7) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    values = [("0x" + rng.randbytes(20).hex(), rng.randrange(2**256)) for _ in range(n)]
    values[-1] = values[0]  # a duplicate leaf: both stay, in a stable order
    values[1] = (values[1][0].upper().replace("0X", "0x"), 0)
    return values


def run_js(request: dict[str, Any]) -> dict[str, Any]:
    node = node_with("@openzeppelin/merkle-tree")
    out = subprocess.run(
        [node, str(CONTRACTS_DIR / "scripts" / "merkle.mjs")],
        input=json.dumps(request), capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return json.loads(out.stdout)


def test_readme_vector_root_proofs_and_dump() -> None:
    tree = StandardMerkleTree.of(README_VALUES, ENCODING)
    assert tree.root == README_ROOT
    assert tree.get_proof(0) == ["0xb92c48e9d7abe27fd8dfd6b5dfdbfb1c9a463f80c712b66f3a5180a090cccafc"]
    assert tree.dump()["values"] == [
        {"value": README_VALUES[0], "treeIndex": 1},
        {"value": README_VALUES[1], "treeIndex": 2},
    ]
    as_ints = StandardMerkleTree.of([(a, int(v)) for a, v in README_VALUES], ENCODING)
    assert as_ints.root == README_ROOT
    assert as_ints.dump() == tree.dump()


def test_keccak_backends_agree_with_the_reference() -> None:
    rng = np.random.default_rng(1)
    for length in (8, 32, 64, 128):
        messages = rng.integers(0, 256, size=(37, length), dtype=np.uint8)
        expected = [keccak256(m.tobytes()) for m in messages]
        assert [row.tobytes() for row in merkle.keccak256_batch(messages)] == expected
        lanes = np.empty((37, 4), dtype=np.uint64)
        merkle._keccak_words_numpy(np.ascontiguousarray(messages.view("<u8")), lanes)
        assert [row.tobytes() for row in lanes.view(np.uint8)] == expected
    assert keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"


def test_batch_leaves_equal_per_leaf_hashes_and_every_proof_verifies() -> None:
    values = random_values(300)
    tree = StandardMerkleTree.of(values, ENCODING)
    for i in (0, 1, 2, 150, 299):
        assert tree.tree[int(tree.tree_indices[i])] == leaf_hash(values[i])
    for i, value in tree.entries():
        proof = tree.get_proof(i)
        assert verify(tree.root, value, proof)
        assert StandardMerkleTree.verify(tree.root, ENCODING, value, proof)
        assert tree.verify_leaf(i, proof)
    assert not verify(tree.root, (values[3][0], values[3][1] + 1), tree.get_proof(3))
    assert tree.leaf_lookup(values[5]) == 5
    assert tree.get_proof(values[5]) == tree.get_proof(5)


def test_tree_shapes_from_one_leaf_up() -> None:
    for n in range(1, 18):
        values = [("0x" + f"{i + 1:040x}", i) for i in range(n)]
        tree = StandardMerkleTree.of(values, ENCODING)
        assert len(tree.tree) == 2 * n - 1
        for i in range(n):
            assert verify(tree.root, values[i], tree.get_proof(i))
    single = StandardMerkleTree.of([("0x" + "ab" * 20, 5)], ENCODING)
    assert single.root == leaf_hash(("0x" + "ab" * 20, 5))
    assert single.get_proof(0) == []
    assert single.render() == f"0) {single.root}"


def test_dump_round_trip_and_tampering_is_caught() -> None:
    tree = StandardMerkleTree.of(random_values(40), ENCODING)
    dump = json.loads(json.dumps(tree.dump()))
    loaded = StandardMerkleTree.load(dump)
    assert loaded.root == tree.root
    assert loaded.get_proof(7) == tree.get_proof(7)

    changed_value = json.loads(json.dumps(dump))
    changed_value["values"][3]["value"][1] = "1"
    with pytest.raises(ValueError, match="expected value"):
        StandardMerkleTree.load(changed_value)
    changed_node = json.loads(json.dumps(dump))
    changed_node["tree"][0] = "0x" + "00" * 32
    with pytest.raises(ValueError, match="invalid"):
        StandardMerkleTree.load(changed_node)
    with pytest.raises(ValueError, match="Unknown format"):
        StandardMerkleTree.load({**dump, "format": "simple-v1"})


@pytest.mark.parametrize(
    "bad",
    [
        [("0x1234", 1)],
        [("0x" + "11" * 20, 1), ("0y" + "22" * 20, 2)],
        [("0x" + "11" * 20, 1), ("0x" + "2g" * 20, 2)],
        [("0x" + "11" * 20, -1)],
        [("0x" + "11" * 20, 2**256)],
        [("0x" + "11" * 20,)],
        [],
    ],
    ids=["short address", "no 0x", "not hex", "negative", "too big", "missing amount", "empty"],
)
def test_bad_values_are_refused(bad: list[tuple[Any, ...]]) -> None:
    with pytest.raises((ValueError, TypeError)):
        StandardMerkleTree.of(bad, ENCODING)


def test_general_leaf_types_take_the_per_leaf_path() -> None:
    encoding = ["bytes32", "bool", "address", "uint256"]
    values = [(os.urandom(32), i % 2 == 0, "0x" + os.urandom(20).hex(), i * 10**18) for i in range(9)]
    tree = StandardMerkleTree.of(values, encoding)
    for i, value in tree.entries():
        assert verify(tree.root, value, tree.get_proof(i), encoding)
    assert StandardMerkleTree.load(json.loads(json.dumps(tree.dump()))).root == tree.root


def test_same_trees_as_the_javascript_library() -> None:
    values = random_values(257)
    dump_values = [[a, str(v)] for a, v in values]
    js = run_js({"op": "of", "values": dump_values, "encoding": ENCODING})
    tree = StandardMerkleTree.of(values, ENCODING)
    assert tree.root == js["root"]
    assert [tree.get_proof(i) for i in range(len(values))] == js["proofs"]
    assert tree.dump() == js["dump"]

    from_js = StandardMerkleTree.load(js["dump"])
    assert from_js.root == tree.root
    back = run_js({"op": "load", "dump": tree.dump()})
    assert back["verified"] is True
    assert back["root"] == tree.root
    assert back["proofs"][100] == tree.get_proof(100)


def test_general_types_match_the_javascript_library() -> None:
    encoding = ["bytes32", "bool", "address", "uint256"]
    values = [["0x" + os.urandom(32).hex(), i % 3 == 0, "0x" + os.urandom(20).hex(), str(i * 7)] for i in range(11)]
    js = run_js({"op": "of", "values": values, "encoding": encoding})
    tree = StandardMerkleTree.of(values, encoding)
    assert tree.root == js["root"]
    assert tree.dump() == js["dump"]
    assert run_js({"op": "load", "dump": tree.dump()})["verified"] is True
