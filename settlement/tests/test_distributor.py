"""RewardDistributor through web3.py, on the embedded chain and on anvil (see conftest.chain)."""

from __future__ import annotations

import os

import pytest
from eth_account import Account
from web3.logs import DISCARD

from settlement.chain import client
from settlement.chain.client import ChainRevert
from settlement.chain.embedded import DEV_KEYS
from settlement.merkle import StandardMerkleTree
from settlement.tests.conftest import Chain

ADMIN, RELAYER, STRANGER = DEV_KEYS[0], DEV_KEYS[1], DEV_KEYS[2]
ENCODING = ["address", "uint256"]
TOKEN = 10**18


def fresh_address() -> str:
    return Account.from_key(os.urandom(32)).address


def anchor_next(chain: Chain, tree: StandardMerkleTree, total: int = 0) -> tuple[int, dict]:
    epoch = client.last_epoch(chain.w3, chain.distributor) + 1
    receipt = client.anchor(
        chain.w3,
        chain.distributor,
        ADMIN,
        epoch=epoch,
        root=tree.root,
        data_hash=os.urandom(32),
        total_cumulative=total,
    )
    return epoch, receipt


def tree_of(entries: list[tuple[str, int]], padding: int = 3) -> StandardMerkleTree:
    # a few other accounts, so proofs have siblings at more than one level
    return StandardMerkleTree.of(entries + [(fresh_address(), TOKEN) for _ in range(padding)], ENCODING)


def test_anchor_stores_root_and_emits_event(chain: Chain) -> None:
    tree = tree_of([(fresh_address(), 5 * TOKEN)])
    epoch, receipt = anchor_next(chain, tree, total=8 * TOKEN)

    assert client.onchain_root(chain.w3, chain.distributor, epoch) == tree.root
    assert client.last_epoch(chain.w3, chain.distributor) == epoch
    event = client.anchored_event(chain.w3, chain.distributor, receipt)
    assert event is not None
    assert (event["epoch"], event["root"], event["totalCumulative"]) == (epoch, tree.root, 8 * TOKEN)
    assert client.onchain_root(chain.w3, chain.distributor, epoch + 1) is None


def test_replayed_or_skipped_epoch_reverts(chain: Chain) -> None:
    tree = tree_of([(fresh_address(), TOKEN)])
    epoch, _ = anchor_next(chain, tree)

    with pytest.raises(ChainRevert) as replay:
        client.anchor(
            chain.w3, chain.distributor, ADMIN, epoch=epoch, root=tree.root, data_hash=b"\0" * 32, total_cumulative=0
        )
    assert replay.value.reason == f"EpochOutOfOrder(expected={epoch + 1}, given={epoch})"
    with pytest.raises(ChainRevert, match="EpochOutOfOrder"):
        client.anchor(
            chain.w3,
            chain.distributor,
            ADMIN,
            epoch=epoch + 2,
            root=tree.root,
            data_hash=b"\0" * 32,
            total_cumulative=0,
        )
    with pytest.raises(ChainRevert, match="InvalidRoot"):
        client.anchor(
            chain.w3,
            chain.distributor,
            ADMIN,
            epoch=epoch + 1,
            root=b"\0" * 32,
            data_hash=b"\0" * 32,
            total_cumulative=0,
        )
    assert client.last_epoch(chain.w3, chain.distributor) == epoch


def test_replayed_anchor_mined_anyway_fails_on_chain(chain: Chain) -> None:
    """A replay sent with a fixed gas limit (no simulation first) is mined as a failure and changes nothing."""
    tree = tree_of([(fresh_address(), TOKEN)])
    epoch, _ = anchor_next(chain, tree)
    tx = client.build_anchor_tx(
        chain.w3, chain.distributor, sender=client.address_of(ADMIN), epoch=epoch, root=b"\1" * 32,
        data_hash=b"\0" * 32, total_cumulative=0, gas=120_000,
    )  # fmt: skip
    raw, tx_hash = client.sign(tx, ADMIN)
    assert client.broadcast(chain.w3, raw) == tx_hash
    assert client.broadcast(chain.w3, raw) == tx_hash  # resending the stored bytes after a crash is harmless
    receipt = client.wait_for_receipt(chain.w3, tx_hash)
    assert receipt["status"] == 0
    assert client.revert_reason(chain.w3, tx_hash).startswith("EpochOutOfOrder")
    assert client.onchain_root(chain.w3, chain.distributor, epoch) == tree.root


def test_claim_pays_then_second_claim_pays_only_the_difference(chain: Chain) -> None:
    account = fresh_address()
    first = tree_of([(account, 5 * TOKEN)])
    epoch1, _ = anchor_next(chain, first)
    receipt = client.claim(chain.w3, chain.distributor, RELAYER, account=account, epoch=epoch1,
                           cumulative_amount=5 * TOKEN, proof=first.get_proof(0))  # fmt: skip
    assert client.token_balance(chain.w3, chain.token, account) == 5 * TOKEN
    claimed = chain.w3.eth.contract(address=chain.distributor, abi=client.load_artifact("RewardDistributor")["abi"])
    (event,) = claimed.events.Claimed().process_receipt(receipt, errors=DISCARD)
    assert (event["args"]["amount"], event["args"]["cumulativeAmount"]) == (5 * TOKEN, 5 * TOKEN)

    second = tree_of([(account, 8 * TOKEN)])
    epoch2, _ = anchor_next(chain, second)
    client.claim(chain.w3, chain.distributor, RELAYER, account=account, epoch=epoch2,
                 cumulative_amount=8 * TOKEN, proof=second.get_proof(0))  # fmt: skip
    assert client.token_balance(chain.w3, chain.token, account) == 8 * TOKEN
    assert client.claimed(chain.w3, chain.distributor, account) == 8 * TOKEN

    for epoch, tree, amount in ((epoch2, second, 8 * TOKEN), (epoch1, first, 5 * TOKEN)):
        with pytest.raises(ChainRevert, match="NothingToClaim"):
            client.claim(chain.w3, chain.distributor, RELAYER, account=account, epoch=epoch,
                         cumulative_amount=amount, proof=tree.get_proof(0))  # fmt: skip
    assert client.token_balance(chain.w3, chain.token, account) == 8 * TOKEN


def test_bad_proofs_revert(chain: Chain) -> None:
    account, other = fresh_address(), fresh_address()
    tree = tree_of([(account, 5 * TOKEN), (other, 7 * TOKEN)])
    epoch, _ = anchor_next(chain, tree)
    attempts = [
        (account, 6 * TOKEN, tree.get_proof(0)),  # inflated amount
        (account, 7 * TOKEN, tree.get_proof(1)),  # someone else's proof
        (other, 7 * TOKEN, tree.get_proof(1)[:-1]),  # truncated
        (account, 5 * TOKEN, []),
    ]
    for who, amount, proof in attempts:
        with pytest.raises(ChainRevert, match="InvalidProof"):
            client.claim(
                chain.w3, chain.distributor, RELAYER, account=who, epoch=epoch, cumulative_amount=amount, proof=proof
            )
    with pytest.raises(ChainRevert, match="UnknownEpoch"):
        client.claim(chain.w3, chain.distributor, RELAYER, account=account, epoch=epoch + 50,
                     cumulative_amount=5 * TOKEN, proof=tree.get_proof(0))  # fmt: skip
    assert client.token_balance(chain.w3, chain.token, account) == 0


def test_claim_sent_by_someone_else_pays_the_account(chain: Chain) -> None:
    account = fresh_address()
    tree = tree_of([(account, 3 * TOKEN)])
    epoch, _ = anchor_next(chain, tree)
    relayer = client.address_of(STRANGER)
    before = client.token_balance(chain.w3, chain.token, relayer)

    client.claim(chain.w3, chain.distributor, STRANGER, account=account, epoch=epoch,
                 cumulative_amount=3 * TOKEN, proof=tree.get_proof(0))  # fmt: skip

    assert client.token_balance(chain.w3, chain.token, account) == 3 * TOKEN
    assert client.token_balance(chain.w3, chain.token, relayer) == before


def test_revoked_root_stops_claims_but_later_roots_pay(chain: Chain) -> None:
    account = fresh_address()
    wrong = tree_of([(account, 100 * TOKEN)])
    epoch, _ = anchor_next(chain, wrong)
    with pytest.raises(ChainRevert, match="AccessControlUnauthorizedAccount"):
        client.revoke_root(chain.w3, chain.distributor, STRANGER, epoch=epoch)

    receipt = client.revoke_root(chain.w3, chain.distributor, ADMIN, epoch=epoch)
    assert receipt["status"] == 1
    assert client.is_revoked(chain.w3, chain.distributor, epoch)
    assert client.onchain_root(chain.w3, chain.distributor, epoch) == client.REVOKED_ROOT
    with pytest.raises(ChainRevert, match=f"RootIsRevoked\\(epoch={epoch}\\)"):
        client.claim(chain.w3, chain.distributor, RELAYER, account=account, epoch=epoch,
                     cumulative_amount=100 * TOKEN, proof=wrong.get_proof(0))  # fmt: skip
    with pytest.raises(ChainRevert, match="RootIsRevoked"):
        client.revoke_root(chain.w3, chain.distributor, ADMIN, epoch=epoch)

    fixed = tree_of([(account, 4 * TOKEN)])
    epoch2, _ = anchor_next(chain, fixed)
    client.claim(chain.w3, chain.distributor, RELAYER, account=account, epoch=epoch2,
                 cumulative_amount=4 * TOKEN, proof=fixed.get_proof(0))  # fmt: skip
    assert client.token_balance(chain.w3, chain.token, account) == 4 * TOKEN


def test_callers_without_the_role_are_refused(chain: Chain) -> None:
    tree = tree_of([(fresh_address(), TOKEN)])
    epoch = client.last_epoch(chain.w3, chain.distributor) + 1
    with pytest.raises(ChainRevert) as refused:
        client.anchor(
            chain.w3, chain.distributor, STRANGER, epoch=epoch, root=tree.root, data_hash=b"\0" * 32, total_cumulative=0
        )
    assert refused.value.error_name == "AccessControlUnauthorizedAccount"
    assert client.address_of(STRANGER).lower() in refused.value.reason.lower()
    with pytest.raises(ChainRevert, match="AccessControlUnauthorizedAccount"):
        client.mint(chain.w3, chain.token, STRANGER, to=client.address_of(STRANGER), amount=TOKEN)
    assert client.onchain_root(chain.w3, chain.distributor, epoch) is None


def test_gas_stays_in_the_designed_range(chain: Chain) -> None:
    """DESIGN.md's budget on a 1,000-account tree: anchor <= 72k, first claim <= 96k, repeat claim <= 61k."""
    accounts = [fresh_address() for _ in range(1000)]
    first = StandardMerkleTree.of([(a, (i + 1) * TOKEN) for i, a in enumerate(accounts)], ENCODING)
    epoch, anchor_receipt = anchor_next(chain, first)
    claim1 = client.claim(chain.w3, chain.distributor, RELAYER, account=accounts[7], epoch=epoch,
                          cumulative_amount=8 * TOKEN, proof=first.get_proof(7))  # fmt: skip
    second = StandardMerkleTree.of([(a, (i + 2) * TOKEN) for i, a in enumerate(accounts)], ENCODING)
    epoch2, _ = anchor_next(chain, second)
    claim2 = client.claim(chain.w3, chain.distributor, RELAYER, account=accounts[7], epoch=epoch2,
                          cumulative_amount=9 * TOKEN, proof=second.get_proof(7))  # fmt: skip
    assert anchor_receipt["gasUsed"] <= 72_000
    assert claim1["gasUsed"] <= 96_000
    assert claim2["gasUsed"] <= 61_000


def test_fee_bump_keeps_the_nonce_and_changes_the_hash(chain: Chain) -> None:
    tx = client.build_anchor_tx(chain.w3, chain.distributor, sender=client.address_of(ADMIN), epoch=10**6,
                                root=b"\1" * 32, data_hash=b"\0" * 32, total_cumulative=0, gas=100_000)  # fmt: skip
    bumped = client.bump_fees(tx, 1.5)
    assert bumped["nonce"] == tx["nonce"]
    assert bumped["maxFeePerGas"] >= tx["maxFeePerGas"] * 1.5
    assert bumped["maxPriorityFeePerGas"] >= tx["maxPriorityFeePerGas"] * 1.5
    assert client.sign(bumped, ADMIN)[1] != client.sign(tx, ADMIN)[1]
    assert client.get_receipt(chain.w3, client.sign(tx, ADMIN)[1]) is None
    with pytest.raises(ValueError, match="10%"):
        client.bump_fees(tx, 1.05)


def test_stale_nonce_with_other_bytes_is_a_conflict(chain: Chain) -> None:
    sender = client.address_of(RELAYER)
    used = chain.w3.eth.get_transaction_count(sender) - 1
    tx = client.build_revoke_tx(chain.w3, chain.distributor, sender=sender, epoch=1, nonce=used, gas=80_000)
    with pytest.raises(client.NonceConflict):
        client.broadcast(chain.w3, client.sign(tx, RELAYER)[0])
