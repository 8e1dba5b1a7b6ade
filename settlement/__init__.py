"""Rewards and settlement: fees and pools split into per-contributor totals, epochs anchored on an EVM chain, proofs
and claims anyone can verify. Imports everything up to attribution.

By capability: ``rewards`` (policies, the open epoch, accrual, pools), ``epochs`` (closing an epoch: curators,
pools, allocations), ``penalties`` (points and standings), ``splits`` (the Django-free arithmetic), ``anchoring``
(the settlement state machine) with ``anchor_tree`` (the tree and published dump) and ``anchor_steps`` (the chain
steps), ``proofs``, ``claims``, ``verification``; ``merkle`` and ``chain/`` are cores, ``contracts/`` the Solidity.
"""
