"""The epoch's Merkle tree and its published dump: one leaf (address, cumulative) per payout address.

``build_step`` is the pending step of a settlement (see ``anchoring``): it reads the allocations, updates
``PayoutAddress`` (cumulative totals never decrease), builds the ``StandardMerkleTree``, writes the dump as canonical
JSON (``core.canonical``) to storage and stores root, data hash and counts on the row. ``verification`` and
``proofs`` read the same format.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from eth_utils import to_checksum_address
from web3 import Web3

from accounts.models import User
from core.canonical import canonical_json
from settlement.anchor_steps import SettlementWaiting
from settlement.chain import config as chain_config
from settlement.chain.client import ChainError
from settlement.merkle import StandardMerkleTree, keccak256
from settlement.models import Allocation, Epoch, PayoutAddress, Settlement

ENCODING = ["address", "uint256"]
DUMP_FORMAT = "datanets-epoch-v1"
# An epoch with no payable account still anchors (chain epochs are strictly sequential): one leaf nobody can claim.
EMPTY_LEAF = ("0x0000000000000000000000000000000000000000", 0)
State = Settlement.State

log = logging.getLogger(__name__)


@dataclass
class Leaves:
    values: list[tuple[str, int]]
    accounts: list[dict[str, Any]]
    unlinked: list[dict[str, Any]]


def _cumulative_through(number: int) -> dict[int, int]:
    cumulative: dict[int, int] = {}
    rows = Allocation.objects.filter(epoch__number__lte=number).values_list("account_id", "cumulative")
    for account_id, amount in rows.iterator(chunk_size=5000):
        cumulative[account_id] = max(cumulative.get(account_id, 0), int(amount))
    return cumulative


def _leaves(number: int) -> Leaves:
    """(address, cumulative) per payout address, updating PayoutAddress; accounts without a wallet are listed."""
    cumulative = _cumulative_through(number)
    this_epoch = dict(
        Allocation.objects.filter(epoch__number=number).values_list("account_id", "amount").iterator(chunk_size=5000)
    )
    rows = list(
        User.objects.filter(pk__in=list(cumulative)).values_list("pk", "username", "wallet_address", "wallet_linked_at")
    )
    users = {pk: (username, wallet) for pk, username, wallet, _ in rows}
    linked_at = {pk: at for pk, _, _, at in rows}
    hold_hours = int(settings.WALLET_CHANGE_HOLD_HOURS)
    hold_from = timezone.now() - timedelta(hours=hold_hours)
    payouts = {p.address: p for p in PayoutAddress.objects.select_for_update()}
    by_account: dict[int, list[PayoutAddress]] = defaultdict(list)
    for payout in payouts.values():
        by_account[payout.account_id].append(payout)
    unlinked: list[dict[str, Any]] = []
    changed, created = [], []

    def hold(account_id: int, total: int, reason: str, *, only_if_owed: bool = False) -> None:
        """List an account left out of this tree, with what it is owed beyond what was published for it."""
        credited = sum(int(p.cumulative) for p in by_account[account_id])
        if total > credited or not only_if_owed:
            unlinked.append(
                {
                    "account": users[account_id][0],
                    "cumulative": str(total),
                    "unpublished": str(total - credited),
                    "reason": reason,
                }
            )

    for account_id, total in sorted(cumulative.items()):
        username, wallet = users[account_id]
        if not wallet:
            hold(account_id, total, "no linked wallet", only_if_owed=True)
            continue
        address = to_checksum_address(wallet)
        earlier = [p for p in by_account[account_id] if p.address != address]
        if earlier and linked_at.get(account_id) and linked_at[account_id] > hold_from:
            # A wallet just changed: a stolen session must not redirect rewards at once. What was published for the
            # earlier address stays claimable there; the rest waits for the hold to end.
            changed_at = linked_at[account_id]
            hold(
                account_id,
                total,
                f"wallet changed on {changed_at:%Y-%m-%d %H:%M} UTC; payouts to it wait {hold_hours} h",
            )
            continue
        elsewhere = sum(int(p.cumulative) for p in by_account[account_id] if p.address != address)
        amount = total - elsewhere
        payout = payouts.get(address)
        if payout is not None and payout.account_id != account_id:
            # The address was already paid to another account (linked before the wallet check existed, or by hand):
            # this account waits with its totals kept, the others settle; an admin sees it on the epoch page.
            reason = f"wallet {address} was already paid to another account; link another wallet"
            hold(account_id, total, reason)
            log.warning("settlement %s: %s held back: %s", number, username, reason)
            continue
        if payout is None:
            payout = PayoutAddress(address=address, account_id=account_id, cumulative=0)
            payouts[address] = payout
            created.append(payout)
        else:
            changed.append(payout)
        if amount < int(payout.cumulative):
            raise ChainError(f"{address}'s cumulative would fall from {payout.cumulative} to {amount}; refusing.")
        payout.cumulative = amount
        payout.through_epoch = number
    PayoutAddress.objects.bulk_create(created, batch_size=5000)
    PayoutAddress.objects.bulk_update(changed, ["cumulative", "through_epoch"], batch_size=5000)
    names = {pk: name for pk, (name, _) in users.items()}
    values, accounts = [], []
    for payout in sorted(payouts.values(), key=lambda p: p.address):
        if int(payout.cumulative) <= 0:
            continue
        values.append((payout.address, int(payout.cumulative)))
        accounts.append(
            {
                "account": names.get(payout.account_id, str(payout.account_id)),
                "address": payout.address,
                "cumulative": str(payout.cumulative),
                "epoch_amount": str(this_epoch.get(payout.account_id, 0))
                if users.get(payout.account_id, ("", ""))[1]
                and to_checksum_address(users[payout.account_id][1]) == payout.address
                else "0",
            }
        )
    return Leaves(values=values, accounts=accounts, unlinked=unlinked)


def build_step(settlement: Settlement, web3: Web3) -> None:
    """The pending step: build the tree and the dump, publish the dump, store the root (never recomputed)."""
    epoch = settlement.epoch
    previous = Epoch.objects.filter(number=epoch.number - 1).first()
    if previous is not None and previous.status != Epoch.Status.SETTLED:
        raise SettlementWaiting(f"epoch {previous.number} must be settled first")
    deployment = chain_config.deployment(web3)
    leaves = _leaves(epoch.number)
    values = leaves.values or [EMPTY_LEAF]
    tree = StandardMerkleTree.of(values, ENCODING)
    total = sum(amount for _, amount in leaves.values)
    dump = {
        "format": DUMP_FORMAT,
        "epoch": epoch.number,
        "chain_id": deployment.chain_id,
        "distributor": deployment.distributor,
        "token": deployment.token,
        "root": tree.root,
        "total_cumulative": str(total),
        "receipts_root": epoch.receipts_root,
        "receipt_count": epoch.receipt_count,
        "fees_in": str(epoch.fees_in),
        "pools_in": str(epoch.pools_in),
        "platform": str(epoch.platform_amount),
        "carried_over": str(epoch.carried_over),
        "valuing_versions": epoch.valuing_versions,
        "closed_at": epoch.closed_at.isoformat() if epoch.closed_at else None,
        "accounts": leaves.accounts,
        "unlinked": leaves.unlinked,
        "tree": tree.dump(),
    }
    body = canonical_json(dump)
    data_hash = "0x" + keccak256(body).hex()
    name = default_storage.save(f"settlement/epoch-{epoch.number}-{data_hash[2:18]}.json", ContentFile(body))
    settlement.chain_id = deployment.chain_id
    settlement.distributor = deployment.distributor
    settlement.root = tree.root
    settlement.data_hash = data_hash
    settlement.total_cumulative = total
    settlement.leaf_count = len(leaves.values)
    settlement.unlinked_count = len(leaves.unlinked)
    settlement.dump_name = name
    settlement.dump_size = len(body)
    settlement.state = State.BUILT
    settlement.note = f"tree of {len(leaves.values):,} accounts built; dump published"
