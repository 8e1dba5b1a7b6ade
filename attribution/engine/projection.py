"""Seeded random projections of per-parameter-block gradients to a small number of dimensions.

Each trainable parameter block gets its own projection, derived from the seed and the block's name, so the result
does not depend on the order the blocks were created in and no single dense matrix over all parameters is needed.
Small blocks use a dense Rademacher matrix (best JL quality); blocks whose dense matrix would exceed
``dense_limit`` entries use a count sketch (a signed hash into the k buckets), which costs O(block size) memory and
time per example instead of O(block size * k). ``kind="none"`` is the identity: the features are the raw per-example
gradients, concatenated block by block (``dim`` must then be the trainable parameter count); ``GradientIndex.build``
picks it for small models (at most ``IDENTITY_MAX_PARAMS`` trainable parameters), where a projection only loses
information.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import torch

DENSE_LIMIT = 1 << 22
# GradientIndex.build(projection="auto") keeps the raw gradients (no projection) at or below this many parameters.
IDENTITY_MAX_PARAMS = 4096


def _block_seed(seed: int, name: str) -> int:
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def block_size_total(blocks: Sequence[tuple[str, tuple[int, ...]]]) -> int:
    """The number of parameters in ``blocks``."""
    total = 0
    for _, shape in blocks:
        size = 1
        for s in shape:
            size *= int(s)
        total += size
    return total


class BlockProjector:
    """Maps per-example gradients {name: [batch, *shape]} to [batch, dim]; deterministic given ``seed``."""

    def __init__(
        self,
        blocks: Sequence[tuple[str, tuple[int, ...]]],
        dim: int,
        seed: int = 0,
        kind: str = "auto",
        dense_limit: int = DENSE_LIMIT,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if dim < 1:
            raise ValueError(f"projection dim must be at least 1, got {dim}")
        if kind not in {"auto", "rademacher", "countsketch", "none"}:
            raise ValueError(f"unknown projection kind {kind!r}: use 'auto', 'rademacher', 'countsketch' or 'none'")
        if kind == "none" and dim != block_size_total(blocks):
            raise ValueError(
                f"projection 'none' keeps every parameter: dim must be {block_size_total(blocks)}, got {dim}"
            )
        self.dim = dim
        self.seed = seed
        self.dtype = dtype
        self.kinds: dict[str, str] = {}
        self._dense: dict[str, torch.Tensor] = {}
        self._buckets: dict[str, torch.Tensor] = {}
        self._signs: dict[str, torch.Tensor] = {}
        self._moved: dict[str, tuple[dict[str, torch.Tensor], ...]] = {}
        for name, shape in blocks:
            size = 1
            for s in shape:
                size *= int(s)
            if kind == "none":
                self.kinds[name] = "none"
                continue
            generator = torch.Generator().manual_seed(_block_seed(seed, name))
            use_dense = kind == "rademacher" or (kind == "auto" and size * dim <= dense_limit)
            if use_dense:
                signs = torch.randint(0, 2, (size, dim), generator=generator, dtype=torch.int8)
                self._dense[name] = (signs.to(dtype) * 2 - 1) / dim**0.5
                self.kinds[name] = "rademacher"
            else:
                self._buckets[name] = torch.randint(0, dim, (size,), generator=generator, dtype=torch.int64)
                self._signs[name] = (
                    torch.randint(0, 2, (size,), generator=generator, dtype=torch.int8).to(dtype) * 2 - 1
                )
                self.kinds[name] = "countsketch"

    def _on(self, device: torch.device) -> tuple[dict[str, torch.Tensor], ...]:
        """The projection tensors on `device`: built on the CPU (the seeded generator), copied once per device so
        that gradients on a GPU are projected there."""
        if device.type == "cpu":
            return self._dense, self._buckets, self._signs
        key = str(device)
        if key not in self._moved:
            self._moved[key] = tuple(
                {name: t.to(device) for name, t in group.items()} for group in (self._dense, self._buckets, self._signs)
            )
        return self._moved[key]

    def __call__(self, grads: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """[batch, dim] on the gradients' device."""
        if self.kinds and all(kind == "none" for kind in self.kinds.values()):
            return torch.cat([grads[name].reshape(grads[name].shape[0], -1).to(self.dtype) for name in self.kinds], 1)
        out: torch.Tensor | None = None
        for name, kind in self.kinds.items():
            g = grads[name]
            dense, buckets, signs = self._on(g.device)
            flat = g.reshape(g.shape[0], -1).to(self.dtype)
            if kind == "rademacher":
                part = flat @ dense[name]
            else:
                part = torch.zeros(flat.shape[0], self.dim, dtype=self.dtype, device=flat.device)
                part.index_add_(1, buckets[name], flat * signs[name])
            out = part if out is None else out + part
        if out is None:
            raise ValueError("the model has no trainable parameters (none with requires_grad=True)")
        return out
