"""Rewards and settlement: accrual of fees and pools into per-contributor totals, epochs, penalties, the Merkle tree,
anchoring on an EVM chain (``chain/``, ``contracts/``), proofs, claims and verification. The pure fee and pool
splits live in the Django-free ``splits``. Imports everything up to attribution."""
