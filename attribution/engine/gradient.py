"""Gradient index: TRAK / influence-function attribution over projected per-example loss gradients.

For training records i and a query q with projected loss gradients phi_i, phi_q (rows of Phi and the query):

    score(q, i) = phi_q (C + lambda I)^-1 phi_i^T

with C a curvature matrix of the summed training loss: Phi^T Phi (TRAK), the Gauss-Newton / Fisher matrix, or the
exact Hessian (influence functions). Positive means upweighting record i lowers the query's loss, so larger = that
record helped more. With several checkpoints the scores are averaged (TRAK's ensemble).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.func import functional_call, grad, jacrev, vmap

from attribution.engine.projection import DENSE_LIMIT, IDENTITY_MAX_PARAMS, BlockProjector, block_size_total
from attribution.engine.search import SQ8Index, TopK, top_k_inner_product

LossFn = Callable[[Any, torch.Tensor], torch.Tensor]
Progress = Callable[[int, int], None]
Batch = torch.Tensor | Mapping[str, torch.Tensor]

FORMAT_VERSION = 1
# At or above this many records, search(approximate="auto") uses the faiss int8 (SQ8) index (exact below it).
APPROXIMATE_MIN_ROWS = 200_000
HESSIANS = ("auto", "exact", "fisher", "empirical")
# The exact Hessian is formed from this many records and Hessian-vector products at once (bounds its memory;
# measured fastest on the digits MLP).
EXACT_HESSIAN_ROWS = 128
EXACT_HESSIAN_CHUNK = 512


class IndexMismatch(ValueError):
    """The model given to the index is not the model the index was built for."""


def trainable_blocks(model: torch.nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(name, tuple(p.shape)) for name, p in model.named_parameters() if p.requires_grad]


def blocks_fingerprint(blocks: Sequence[tuple[str, tuple[int, ...]]]) -> str:
    canonical = json.dumps([[name, list(shape)] for name, shape in blocks], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def weights_digest(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, p in model.named_parameters():
        if p.requires_grad:
            digest.update(name.encode())
            digest.update(p.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _as_batch(data: Any) -> Batch:
    if isinstance(data, Mapping):
        return {key: torch.as_tensor(value) for key, value in data.items()}
    return torch.as_tensor(data)


def _to(data: Batch, device: torch.device) -> Batch:
    if isinstance(data, Mapping):
        return {key: value.to(device) for key, value in data.items()}
    return data.to(device)


def _length(data: Batch) -> int:
    if isinstance(data, Mapping):
        return len(next(iter(data.values())))
    return len(data)


def _slice(data: Batch, start: int, stop: int) -> Batch:
    if isinstance(data, Mapping):
        return {key: value[start:stop] for key, value in data.items()}
    return data[start:stop]


def _unsqueeze(data: Batch) -> Batch:
    if isinstance(data, Mapping):
        return {key: value.unsqueeze(0) for key, value in data.items()}
    return data.unsqueeze(0)


def _call(model: torch.nn.Module, params: tuple[dict[str, torch.Tensor], ...], x: Batch) -> Any:
    if isinstance(x, Mapping):
        return functional_call(model, params, (), dict(x))
    return functional_call(model, params, (x,))


class _GradientProjector:
    """Per-example gradients of one checkpoint, projected to ``dim``; non-finite rows are reported and zeroed."""

    def __init__(self, model: torch.nn.Module, loss_fn: LossFn, projector: BlockProjector, per_example: str) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.projector = projector
        self.per_example = per_example
        self.names = [name for name, _ in trainable_blocks(model)]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def __call__(self, inputs: Batch, targets: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        """(projected gradients on the CPU, rows whose gradient was not finite)."""
        projected, finite = self.on_device(inputs, targets)
        return projected.cpu(), np.flatnonzero(~finite.cpu().numpy())

    def on_device(self, inputs: Batch, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(projected gradients, finite-row mask), both on the model's device; the inputs and targets go there."""
        device = self.device
        inputs, targets = _to(inputs, device), targets.to(device)
        grads = self._grads(inputs, targets)
        batch = _length(inputs)
        finite = torch.ones(batch, dtype=torch.bool, device=device)
        for g in grads.values():
            finite &= torch.isfinite(g.reshape(batch, -1)).all(dim=1)
        # Unconditionally (no host sync on a GPU): a non-finite record's gradient is zeroed before projection.
        grads = {name: torch.where(finite.view(-1, *[1] * (g.dim() - 1)), g, 0.0) for name, g in grads.items()}
        projected = self.projector(grads)
        finite &= torch.isfinite(projected).all(dim=1)
        projected = torch.where(finite.view(-1, 1), projected, 0.0)
        return projected, finite

    def _grads(self, inputs: Batch, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        was_training = self.model.training
        # Dropout and batch-norm statistics would make gradients random and batch-dependent.
        self.model.eval()
        try:
            if self.per_example in {"vmap", "auto"}:
                try:
                    return self._vmap_grads(inputs, targets)
                except (RuntimeError, NotImplementedError):
                    if self.per_example == "vmap":
                        raise
            return self._loop_grads(inputs, targets)
        finally:
            self.model.train(was_training)

    def _vmap_grads(self, inputs: Batch, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        trainable = {n: p.detach() for n, p in self.model.named_parameters() if p.requires_grad}
        frozen = {n: p.detach() for n, p in self.model.named_parameters() if not p.requires_grad}
        buffers = {n: b.detach() for n, b in self.model.named_buffers()}

        def loss_one(params: dict[str, torch.Tensor], x: Batch, y: torch.Tensor) -> torch.Tensor:
            out = _call(self.model, (params, frozen, buffers), _unsqueeze(x))
            return self.loss_fn(out, y.unsqueeze(0)).sum()

        return vmap(grad(loss_one), in_dims=(None, 0, 0))(trainable, inputs, targets)

    def _loop_grads(self, inputs: Batch, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        params = [p for _, p in self.model.named_parameters() if p.requires_grad]
        rows: list[tuple[torch.Tensor, ...]] = []
        for i in range(_length(inputs)):
            x = _slice(inputs, i, i + 1)
            with torch.enable_grad():
                out = self.model(**x) if isinstance(x, Mapping) else self.model(x)
                loss = self.loss_fn(out, targets[i : i + 1]).sum()
                rows.append(torch.autograd.grad(loss, params, allow_unused=True))
        return {
            name: torch.stack([r[j] if r[j] is not None else torch.zeros_like(params[j]) for r in rows])
            for j, name in enumerate(self.names)
        }


class GradientIndex:
    """Projected training gradients and their preconditioner; see the module docstring for the score."""

    def __init__(
        self,
        features: np.ndarray,
        preconditioners: np.ndarray,
        meta: dict[str, Any],
        models: Sequence[torch.nn.Module] | None = None,
        loss_fn: LossFn | None = None,
    ) -> None:
        self.features = features
        self.preconditioners = preconditioners
        self.meta = meta
        self.models: list[torch.nn.Module] = list(models) if models else []
        self.loss_fn = loss_fn
        self._projectors: list[_GradientProjector] | None = None
        self._approx: SQ8Index | None = None
        self.approximate_calibration: dict[str, float] = {}

    @property
    def n_train(self) -> int:
        return int(self.features.shape[0])

    @property
    def bad_records(self) -> list[int]:
        """Training records whose gradient was NaN or infinite; their features are zero (they score 0)."""
        return list(self.meta["bad_records"])

    @property
    def dim(self) -> int:
        return int(self.meta["proj_dim"])

    @classmethod
    def build(
        cls,
        model: torch.nn.Module | None,
        loss_fn: LossFn,
        train_inputs: Any,
        train_targets: Any,
        *,
        models: Sequence[torch.nn.Module] | None = None,
        proj_dim: int = 256,
        seed: int = 0,
        damping: float = 1.0,
        batch_size: int = 64,
        projection: str = "auto",
        dense_limit: int = DENSE_LIMIT,
        per_example: str = "auto",
        hessian: str = "empirical",
        dtype: torch.dtype = torch.float32,
        progress: Progress | None = None,
    ) -> GradientIndex:
        """Index the training set.

        ``damping`` is relative: lambda = damping * mean eigenvalue of the curvature matrix (its trace / dim), so one
        setting works whatever the gradient scale. ``models`` (checkpoints of the same architecture) turns on the
        ensemble. The curvature matrix (``hessian``):

        - ``"empirical"``: Phi^T Phi (one gradient per record; TRAK).
        - ``"fisher"``: the exact Fisher / Gauss-Newton matrix of a classifier whose outputs are [batch, classes]
          logits, sum_i sum_c p_ic phi_i(c)^T phi_i(c) with phi_i(c) the gradient for label c (one extra gradient
          pass per class).
        - ``"exact"``: the Hessian of the summed training loss over the trainable parameters (influence functions),
          for unprojected indexes only (at most ``IDENTITY_MAX_PARAMS`` parameters); where it has negative curvature
          stronger than lambda, its negative eigenvalues are clipped to zero. For a linear softmax classifier it
          equals the Fisher; for a network with hidden layers it also carries the second derivatives of the logits.
        - ``"auto"``: ``"exact"`` when the index keeps the raw gradients, else ``"fisher"`` for [batch, classes]
          logits, else ``"empirical"``. On the digits and reviews benchmarks (benchmarks/attribution/lds.py and
          lds_reviews.py) it gives the best LDS of the three at damping 1.0.

        ``projection="none"`` keeps the raw per-example gradients (proj_dim becomes the trainable parameter count);
        ``"auto"`` does so when the model has at most ``IDENTITY_MAX_PARAMS`` trainable parameters or no more than
        ``proj_dim``, and otherwise projects each block (dense Rademacher, or a count sketch for large blocks).
        ``"rademacher"`` / ``"countsketch"`` force one random projection for every block.
        """
        if hessian not in HESSIANS:
            raise ValueError(f"unknown hessian {hessian!r}: use one of {', '.join(HESSIANS)}")
        checkpoints = list(models) if models else ([model] if model is not None else [])
        if not checkpoints:
            raise ValueError("pass a model, or models=[...] for an ensemble of checkpoints")
        blocks = trainable_blocks(checkpoints[0])
        if not blocks:
            raise ValueError("the model has no trainable parameters (none with requires_grad=True)")
        if projection not in {"auto", "rademacher", "countsketch", "none"}:
            raise ValueError(f"unknown projection {projection!r}: use 'auto', 'rademacher', 'countsketch' or 'none'")
        n_params = block_size_total(blocks)
        if projection == "none" or (projection == "auto" and n_params <= max(IDENTITY_MAX_PARAMS, proj_dim)):
            # Stored as "none" (not "auto") so that a saved index rebuilds the same projector whatever the threshold.
            projection, proj_dim = "none", n_params
        if hessian == "exact" and projection != "none":
            raise ValueError(
                f"hessian='exact' needs the raw gradients, but this model has {n_params} trainable parameters and the "
                f"index projects them (projection={projection!r}); use hessian='auto' or 'fisher', or "
                "projection='none'"
            )
        fingerprint = blocks_fingerprint(blocks)
        for m in checkpoints[1:]:
            if blocks_fingerprint(trainable_blocks(m)) != fingerprint:
                raise IndexMismatch("the checkpoints in models=[...] do not share the same trainable parameters")
        inputs = _as_batch(train_inputs)
        targets = torch.as_tensor(train_targets)
        n = _length(inputs)
        if n < 1:
            raise ValueError("the training set is empty: nothing to index")
        if len(targets) != n:
            raise ValueError(f"{n} training inputs but {len(targets)} targets")
        if hessian == "auto":
            hessian = "exact" if projection == "none" else _classifier_or_empirical(checkpoints[0], inputs)
        meta: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "proj_dim": proj_dim,
            "seed": seed,
            "damping": damping,
            "projection": projection,
            "per_example": per_example,
            "hessian": hessian,
            "dense_limit": dense_limit,
            "dtype": str(dtype).removeprefix("torch."),
            "blocks": [[name, list(shape)] for name, shape in blocks],
            "fingerprint": fingerprint,
            "weights": [weights_digest(m) for m in checkpoints],
            "n_train": n,
            "n_models": len(checkpoints),
        }
        index = cls(np.zeros((0, 0)), np.zeros((0, 0, 0)), meta, checkpoints, loss_fn)
        np_dtype = np.float64 if dtype == torch.float64 else np.float32
        features = np.zeros((n, proj_dim * len(checkpoints)), dtype=np_dtype)
        preconditioners = np.zeros((len(checkpoints), proj_dim, proj_dim), dtype=np.float64)
        bad: set[int] = set()
        lambdas: list[float] = []
        total = n * len(checkpoints)
        done = 0
        for m, gp in enumerate(index._projector_list()):
            cols = slice(m * proj_dim, (m + 1) * proj_dim)
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                phi, bad_rows = gp(_slice(inputs, start, stop), targets[start:stop])
                features[start:stop, cols] = phi.detach().numpy()
                bad.update(int(start + r) for r in bad_rows)
                done += stop - start
                if progress is not None:
                    progress(done, total)
            if hessian == "fisher":
                curvature = _fisher_gram(gp, inputs, batch_size)
            elif hessian == "exact":
                curvature = _exact_hessian(gp, inputs, targets, skip=bad)
            else:
                phi_all = features[:, cols].astype(np.float64)
                curvature = phi_all.T @ phi_all
            preconditioners[m], lam = _preconditioner(curvature, damping)
            lambdas.append(lam)
        meta["bad_records"] = sorted(bad)
        meta["lambdas"] = lambdas
        index.features = features
        index.preconditioners = preconditioners
        return index

    def attach(
        self,
        model: torch.nn.Module | None = None,
        loss_fn: LossFn | None = None,
        *,
        models: Sequence[torch.nn.Module] | None = None,
    ) -> GradientIndex:
        """Give a loaded index the model(s) and loss it needs to compute query gradients."""
        checkpoints = list(models) if models else ([model] if model is not None else [])
        if len(checkpoints) != self.meta["n_models"]:
            raise IndexMismatch(
                f"this index was built from {self.meta['n_models']} checkpoint(s), got {len(checkpoints)}"
            )
        self.models = checkpoints
        if loss_fn is not None:
            self.loss_fn = loss_fn
        self._projectors = None
        self._check_models()
        return self

    def query_vectors(self, test_inputs: Any, test_targets: Any, *, batch_size: int = 64) -> np.ndarray:
        """Preconditioned query gradients q such that scores = q @ features.T."""
        self._check_models()
        inputs = _as_batch(test_inputs)
        targets = torch.as_tensor(test_targets)
        n = _length(inputs)
        k = self.dim
        out = np.zeros((n, self.features.shape[1]), dtype=self.features.dtype)
        for m, gp in enumerate(self._projector_list()):
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                phi, _ = gp(_slice(inputs, start, stop), targets[start:stop])
                q = phi.detach().numpy().astype(np.float64) @ self.preconditioners[m]
                out[start:stop, m * k : (m + 1) * k] = q / len(self.models)
        return out

    def scores(self, test_inputs: Any, test_targets: Any) -> np.ndarray:
        """[n_test, n_train]; larger = that training record lowered that test loss more."""
        return self.query_vectors(test_inputs, test_targets) @ np.asarray(self.features).T

    def top_k(
        self,
        test_inputs: Any,
        test_targets: Any,
        k: int,
        *,
        block_rows: int = 1 << 18,
        approximate: bool | str = "auto",
    ) -> TopK:
        """Best k training records per test example (indices and scores, best first); see ``search``."""
        return self.search(
            self.query_vectors(test_inputs, test_targets), k, block_rows=block_rows, approximate=approximate
        )

    def search(
        self, query_vectors: np.ndarray, k: int, *, block_rows: int = 1 << 18, approximate: bool | str = "auto"
    ) -> TopK:
        """Top-k training records for preconditioned query vectors.

        ``approximate=False`` scans every record (blockwise). ``True`` scans faiss int8 codes and reranks the best
        candidates exactly (``approximate_index``, built and calibrated on first use); its scores are exact, but a
        record that quantization pushes below the candidate cut can be missed. ``"auto"`` (default) is approximate at
        ``APPROXIMATE_MIN_ROWS`` records and more, exact below.
        """
        if approximate not in ("auto", True, False):
            raise ValueError(f"approximate must be 'auto', True or False, got {approximate!r}")
        if approximate is True or (approximate == "auto" and self.n_train >= APPROXIMATE_MIN_ROWS):
            return self.approximate_index().search(query_vectors, k)
        return top_k_inner_product(query_vectors, self.features, k, block_rows=block_rows)

    def approximate_index(self, *, recall: float = 0.95, k: int = 50, n_calibration: int = 32) -> SQ8Index:
        """The faiss int8 (SQ8) index over the features (n * dim bytes), built once and calibrated: its candidate count is the
        smallest that reaches mean recall@k >= ``recall`` against exact search for queries made from random
        training records' preconditioned gradients. ``approximate_calibration`` records what was reached."""
        if self._approx is None:
            index = SQ8Index(self.features)
            rng = np.random.default_rng(int(self.meta.get("seed", 0)) + 1)
            rows = np.sort(rng.choice(self.n_train, min(n_calibration, self.n_train), replace=False))
            phi = np.asarray(self.features[rows], dtype=np.float64)
            queries = np.zeros_like(phi)
            d = self.dim
            n_models = len(self.preconditioners)
            for m in range(n_models):
                queries[:, m * d : (m + 1) * d] = phi[:, m * d : (m + 1) * d] @ self.preconditioners[m] / n_models
            self.approximate_calibration = index.calibrate(
                queries.astype(np.float32), k=min(k, self.n_train), target=recall
            )
            self._approx = index
        return self._approx

    def self_scores(self, *, block_rows: int = 1 << 16) -> np.ndarray:
        """Self-influence phi_i (Phi^T Phi + lambda I)^-1 phi_i^T per record; high = suspicious."""
        k = self.dim
        out = np.zeros(self.n_train, dtype=np.float64)
        for start in range(0, self.n_train, block_rows):
            block = np.asarray(self.features[start : start + block_rows], dtype=np.float64)
            for m in range(self.meta["n_models"]):
                phi = block[:, m * k : (m + 1) * k]
                out[start : start + len(block)] += ((phi @ self.preconditioners[m]) * phi).sum(axis=1)
        return out / self.meta["n_models"]

    def save(self, path: str | Path) -> None:
        """A directory: features.npy (memory-mappable at load), preconditioners.npy, meta.json."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "features.npy", np.asarray(self.features))
        np.save(folder / "preconditioners.npy", self.preconditioners)
        (folder / "meta.json").write_text(json.dumps(self.meta, sort_keys=True, indent=1))

    @classmethod
    def load(
        cls,
        path: str | Path,
        model: torch.nn.Module | None = None,
        loss_fn: LossFn | None = None,
        *,
        models: Sequence[torch.nn.Module] | None = None,
        mmap: bool = False,
    ) -> GradientIndex:
        folder = Path(path)
        meta_path = folder / "meta.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"no gradient index at {folder} (meta.json is missing)")
        meta = json.loads(meta_path.read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise IndexMismatch(f"index format {meta.get('format_version')} is not {FORMAT_VERSION}: rebuild it")
        features = np.load(folder / "features.npy", mmap_mode="r" if mmap else None)
        preconditioners = np.load(folder / "preconditioners.npy")
        index = cls(features, preconditioners, meta, loss_fn=loss_fn)
        if model is not None or models:
            index.attach(model, loss_fn, models=models)
        return index

    def _projector_list(self) -> list[_GradientProjector]:
        if self._projectors is None:
            dtype = torch.float64 if self.meta["dtype"] == "float64" else torch.float32
            blocks = [(name, tuple(shape)) for name, shape in self.meta["blocks"]]
            projector = BlockProjector(
                blocks,
                self.meta["proj_dim"],
                self.meta["seed"],
                self.meta["projection"],
                self.meta["dense_limit"],
                dtype,
            )
            assert self.loss_fn is not None
            self._projectors = [
                _GradientProjector(m, self.loss_fn, projector, self.meta.get("per_example", "auto"))
                for m in self.models
            ]
        return self._projectors

    def _check_models(self) -> None:
        if not self.models or self.loss_fn is None:
            raise ValueError(
                "this index has no model to compute query gradients with: pass model= and loss_fn= to "
                "GradientIndex.load(...) or call index.attach(model, loss_fn)"
            )
        for i, m in enumerate(self.models):
            blocks = trainable_blocks(m)
            if blocks_fingerprint(blocks) != self.meta["fingerprint"]:
                raise IndexMismatch(
                    "the model's trainable parameters (names or shapes) changed since this index was built: "
                    f"indexed {len(self.meta['blocks'])} blocks, the model has {len(blocks)}; rebuild the index"
                )
            if weights_digest(m) != self.meta["weights"][i]:
                raise IndexMismatch(
                    "the model's trainable weights changed since this index was built (it was trained further or "
                    "is another version); rebuild the index for this model"
                )


def _fisher_gram(gp: _GradientProjector, inputs: Batch, batch_size: int) -> np.ndarray:
    n = _length(inputs)
    gram = np.zeros((gp.projector.dim, gp.projector.dim), dtype=np.float64)
    for start in range(0, n, batch_size):
        x = _to(_slice(inputs, start, min(start + batch_size, n)), gp.device)
        with torch.no_grad():
            logits = gp.model(**x) if isinstance(x, Mapping) else gp.model(x)
        if logits.dim() != 2:
            raise ValueError("hessian='fisher' needs a classifier whose outputs are [batch, classes] logits")
        probs = torch.softmax(logits.double(), dim=1).cpu().numpy()
        probs[~np.isfinite(probs).all(axis=1)] = 0.0  # a record with non-finite logits adds no curvature
        for c in range(probs.shape[1]):
            phi, _ = gp(x, torch.full((len(logits),), c, dtype=torch.int64))
            f = phi.detach().numpy().astype(np.float64)
            gram += (f * probs[:, c : c + 1]).T @ f
    return gram


def _classifier_or_empirical(model: torch.nn.Module, inputs: Batch) -> str:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            first = _to(_slice(inputs, 0, 1), next(model.parameters()).device)
            out = model(**first) if isinstance(first, Mapping) else model(first)
    finally:
        model.train(was_training)
    return "fisher" if isinstance(out, torch.Tensor) and out.dim() == 2 and out.shape[1] > 1 else "empirical"


def _take(data: Batch, rows: torch.Tensor) -> Batch:
    if isinstance(data, Mapping):
        return {key: value[rows] for key, value in data.items()}
    return data[rows]


def _exact_hessian(gp: _GradientProjector, inputs: Batch, targets: torch.Tensor, skip: set[int]) -> np.ndarray:
    """Hessian of the summed training loss over the trainable parameters, flattened in the raw-gradient order.

    Records in ``skip`` (non-finite gradients) are left out, and so is any other record whose own Hessian is not
    finite, as the features zero them."""
    model = gp.model
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    frozen = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    buffers = {n: b.detach() for n, b in model.named_buffers()}
    flat = torch.cat([p.detach().reshape(-1) for _, p in named])
    device = flat.device

    def loss(vector: torch.Tensor, x: Batch, y: torch.Tensor) -> torch.Tensor:
        params, offset = {}, 0
        for name, p in named:
            params[name] = vector[offset : offset + p.numel()].view(p.shape)
            offset += p.numel()
        return gp.loss_fn(_call(model, (params, frozen, buffers), x), y).sum()

    second = jacrev(jacrev(loss), chunk_size=EXACT_HESSIAN_CHUNK)
    kept = torch.tensor([i for i in range(_length(inputs)) if i not in skip], dtype=torch.int64)
    hessian = np.zeros((len(flat), len(flat)), dtype=np.float64)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(kept), EXACT_HESSIAN_ROWS):
            rows = kept[start : start + EXACT_HESSIAN_ROWS]
            part = second(flat, _to(_take(inputs, rows), device), targets[rows].to(device)).detach().double().cpu()
            part = part.numpy()
            if not np.isfinite(part).all():
                singles = [
                    second(flat, _to(_take(inputs, rows[i : i + 1]), device), targets[rows[i : i + 1]].to(device))
                    for i in range(len(rows))
                ]
                part = sum(
                    (h.detach().double().cpu().numpy() for h in singles if bool(torch.isfinite(h).all())),
                    np.zeros_like(hessian),
                )
            hessian += part
    finally:
        model.train(was_training)
    return (hessian + hessian.T) / 2


def _preconditioner(curvature: np.ndarray, damping: float) -> tuple[np.ndarray, float]:
    """(C + lambda I)^-1 with lambda = damping * C's mean eigenvalue (its trace / dim).

    A Cholesky inverse (several times faster than an eigendecomposition) whenever C + lambda I is positive definite,
    which it always is for the Gram and Fisher matrices. An exact Hessian whose negative curvature is stronger than
    lambda is made positive semi-definite first, by clipping its negative eigenvalues to zero.
    """
    dim = len(curvature)
    mean = float(np.trace(curvature)) / dim
    # An all-zero Phi (e.g. a single record whose gradient was NaN) still needs an invertible matrix.
    lam = damping * mean if mean > 0 else 1.0
    matrix = torch.from_numpy(np.ascontiguousarray(curvature, dtype=np.float64))
    factor, info = torch.linalg.cholesky_ex(matrix + lam * torch.eye(dim, dtype=torch.float64))
    if int(info) == 0:
        return torch.cholesky_inverse(factor).numpy(), lam
    eigenvalues, vectors = torch.linalg.eigh(matrix)
    return ((vectors / (eigenvalues.clamp(min=0.0) + lam)) @ vectors.T).numpy(), lam
