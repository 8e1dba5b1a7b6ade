"""The committed contract artifacts: complete, and identical to a fresh solc-js compile when node is there."""

from __future__ import annotations

import subprocess

from settlement.chain.client import load_artifact
from settlement.tests.conftest import CONTRACTS_DIR, node_with


def test_artifacts_are_complete_and_pinned() -> None:
    for name in ("DatanetsToken", "RewardDistributor"):
        artifact = load_artifact(name)
        assert artifact["bytecode"].startswith("0x60") and artifact["deployedBytecode"].startswith("0x60")
        assert artifact["compiler"]["version"].startswith("0.8.")
        assert artifact["compiler"]["settings"] == {"evmVersion": "cancun", "optimizer": {"enabled": True, "runs": 200}}
        assert len(artifact["sourceHash"]) == 64
        assert any(path.startswith("@openzeppelin/contracts/") for path in artifact["sources"])
    abi = {item.get("name") for item in load_artifact("RewardDistributor")["abi"]}
    assert {
        "anchor",
        "claim",
        "revokeRoot",
        "roots",
        "claimed",
        "lastEpoch",
        "Anchored",
        "Claimed",
        "RootRevoked",
    } <= abi


def test_committed_artifacts_match_a_fresh_compile() -> None:
    node = node_with("solc")
    result = subprocess.run(
        [node, "build.mjs", "--check"], check=False, cwd=CONTRACTS_DIR, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr + result.stdout
