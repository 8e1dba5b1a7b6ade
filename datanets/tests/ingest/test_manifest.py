import hashlib

import pytest

from datanets.ingest.manifest import merkle_proof, merkle_root_sha256, verify_proof


def leaf(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def sha(left: str, right: str) -> str:
    return hashlib.sha256(bytes.fromhex(left) + bytes.fromhex(right)).hexdigest()


def test_edge_cases() -> None:
    assert merkle_root_sha256([]) == hashlib.sha256(b"").hexdigest()
    assert merkle_root_sha256([leaf(1)]) == leaf(1)
    assert merkle_root_sha256([leaf(1), leaf(2)]) == sha(leaf(1), leaf(2))


def test_odd_node_is_carried_up_unchanged() -> None:
    a, b, c = leaf(1), leaf(2), leaf(3)
    assert merkle_root_sha256([a, b, c]) == sha(sha(a, b), c)
    d, e = leaf(4), leaf(5)
    assert merkle_root_sha256([a, b, c, d, e]) == sha(sha(sha(a, b), sha(c, d)), e)


def test_order_matters_and_bad_leaves_are_refused() -> None:
    assert merkle_root_sha256([leaf(1), leaf(2)]) != merkle_root_sha256([leaf(2), leaf(1)])
    with pytest.raises(ValueError, match="leaf 1 is not a 64-character hex SHA-256"):
        merkle_root_sha256([leaf(1), "abc"])


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13])
def test_every_proof_verifies_and_a_wrong_one_does_not(n: int) -> None:
    leaves = sorted(leaf(i) for i in range(n))
    root = merkle_root_sha256(leaves)
    for index, value in enumerate(leaves):
        proof = merkle_proof(leaves, index)
        assert verify_proof(value, proof, root)
        assert not verify_proof(leaf(999), proof, root)
    if n > 1:
        proof = merkle_proof(leaves, 0)
        flipped = [(sibling, "L" if side == "R" else "R") for sibling, side in proof]
        assert not verify_proof(leaves[0], flipped, root)
    assert not verify_proof("zz", [], root)
