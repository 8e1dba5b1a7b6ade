"""Near-duplicate text detection with MinHash and LSH banding, vectorized over batches with numpy.

Construction (stable across processes and machines, so signatures and band keys can be stored):
- words: `\\w+` runs of the lowercased text; each word hashed with zlib.crc32 of its UTF-8 bytes;
- shingles: every run of `ngram` consecutive words (a text with fewer words is one shingle of all of them),
  hashed by folding the word hashes with a 64-bit multiply-add and a splitmix64 finalizer, kept to 32 bits;
- permutations: for permutation i, h_i(x) = ((a_i * x + b_i) mod 2**64) >> 32 with a_i, b_i drawn from
  numpy's PCG64 seeded with `seed` (multiply-add-shift, a strongly universal family on 32-bit keys);
- signature[i] = min over the text's shingles of h_i(shingle), as uint32;
- band key of band j: splitmix64 folded over (j, the band's `rows` values), masked to 63 bits so it fits a
  signed 64-bit database column.
Python's own hash() is never used: it is salted per process.
"""

from __future__ import annotations

import functools
import re
import zlib
from collections import defaultdict
from collections.abc import Hashable, Iterable

import numpy as np

_WORD = re.compile(r"\w+")
_MASK63 = np.uint64((1 << 63) - 1)
_FOLD = np.uint64(0x9E3779B97F4A7C15)
_CHUNK_SHINGLES = 1024
# Candidates are checked against the estimated Jaccard afterwards, so a false positive costs one comparison while
# a false negative lets a near duplicate through: weight misses 9 to 1 (datasketch's default is 1 to 1, which
# misses more than half of the pairs right at the threshold).
RECALL_WEIGHTS = (0.1, 0.9)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def words_of(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def word_shingles(text: str, ngram: int = 3) -> set[tuple[str, ...]]:
    """The exact shingle set MinHasher estimates over (for tests and exact Jaccard)."""
    words = words_of(text)
    if len(words) < ngram:
        return {tuple(words)}
    return {tuple(words[i : i + ngram]) for i in range(len(words) - ngram + 1)}


def exact_jaccard(text_a: str, text_b: str, ngram: int = 3) -> float:
    a, b = word_shingles(text_a, ngram), word_shingles(text_b, ngram)
    return len(a & b) / len(a | b) if a | b else 1.0


def _fold(word_hashes: list[np.ndarray]) -> np.ndarray:
    acc = np.zeros_like(word_hashes[0])
    for hashes in word_hashes:
        acc = acc * _FOLD + hashes
    return _splitmix64(acc) >> np.uint64(32)


class MinHasher:
    def __init__(self, num_perm: int = 128, ngram: int = 3, seed: int = 1) -> None:
        if num_perm < 1 or ngram < 1:
            raise ValueError("num_perm and ngram must be at least 1")
        self.num_perm = num_perm
        self.ngram = ngram
        self.seed = seed
        rng = np.random.Generator(np.random.PCG64(seed))
        self._a = rng.integers(0, 1 << 64, size=num_perm, dtype=np.uint64) | np.uint64(1)
        self._b = rng.integers(0, 1 << 64, size=num_perm, dtype=np.uint64)

    def shingle_hashes(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(32-bit shingle hashes of all texts concatenated as uint64, start offset of each text)."""
        crc = zlib.crc32
        flat: list[int] = []
        lengths = np.empty(len(texts), dtype=np.int64)
        for i, text in enumerate(texts):
            words = _WORD.findall(text.lower())
            lengths[i] = len(words)
            flat.extend([crc(word.encode("utf-8")) for word in words])
        word_hashes = np.asarray(flat, dtype=np.uint64)
        word_starts = np.zeros(len(texts), dtype=np.int64)
        np.cumsum(lengths[:-1], out=word_starts[1:])
        n = self.ngram
        counts = np.maximum(lengths - n + 1, 1)
        offsets = np.zeros(len(texts), dtype=np.int64)
        np.cumsum(counts[:-1], out=offsets[1:])
        total = int(counts.sum())
        # Shingle k of text t starts at word word_starts[t] + k; long texts use full n-grams.
        text_of_shingle = np.repeat(np.arange(len(texts)), counts)
        first_word = word_starts[text_of_shingle] + (np.arange(total) - offsets[text_of_shingle])
        long_enough = lengths[text_of_shingle] >= n
        hashes = np.zeros(total, dtype=np.uint64)
        if long_enough.any():
            starts = first_word[long_enough]
            hashes[long_enough] = _fold([word_hashes[starts + j] for j in range(n)])
        for t in np.flatnonzero(lengths < n):
            words = word_hashes[word_starts[t] : word_starts[t] + lengths[t]]
            hashes[offsets[t]] = _fold([words[j : j + 1] for j in range(len(words))])[0] if len(words) else 0
        return hashes, offsets

    def signatures(self, texts: list[str]) -> np.ndarray:
        """MinHash signatures, shape (len(texts), num_perm), uint32."""
        out = np.empty((len(texts), self.num_perm), dtype=np.uint32)
        if not texts:
            return out
        hashes, offsets = self.shingle_hashes(texts)
        bounds = np.append(offsets, len(hashes))
        a, b, shift = self._a[None, :], self._b[None, :], np.uint64(32)
        # Whole texts in chunks of about _CHUNK_SHINGLES shingles: the (shingles x perms) block stays in cache,
        # which is several times faster than one big matrix, and is computed in place.
        buffer = np.empty((_CHUNK_SHINGLES, self.num_perm), dtype=np.uint64)
        t0 = 0
        while t0 < len(texts):
            t1 = int(np.searchsorted(bounds, bounds[t0] + _CHUNK_SHINGLES, side="right")) - 1
            t1 = min(max(t1, t0 + 1), len(texts))
            lo, hi = bounds[t0], bounds[t1]
            if hi - lo > len(buffer):
                buffer = np.empty((hi - lo, self.num_perm), dtype=np.uint64)
            block = buffer[: hi - lo]
            np.multiply(hashes[lo:hi, None], a, out=block)
            np.add(block, b, out=block)
            np.right_shift(block, shift, out=block)
            out[t0:t1] = np.minimum.reduceat(block, offsets[t0:t1] - lo, axis=0)
            t0 = t1
        return out

    def signature(self, text: str) -> np.ndarray:
        return self.signatures([text])[0]


def _probability(s: np.ndarray, bands: int, rows: int) -> np.ndarray:
    return 1.0 - (1.0 - s**rows) ** bands


@functools.lru_cache(maxsize=64)
def lsh_params(
    threshold: float,
    num_perm: int,
    false_positive_weight: float = 0.5,
    false_negative_weight: float = 0.5,
) -> tuple[int, int]:
    """(bands, rows) with bands * rows <= num_perm minimizing the weighted false positive and negative areas.

    Same objective as datasketch's `_optimal_param`, integrated with Simpson's rule instead of scipy.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError("threshold must be between 0 and 1")

    def area(lo: float, hi: float, bands: int, rows: int, above: bool) -> float:
        s = np.linspace(lo, hi, 401)
        p = _probability(s, bands, rows)
        y = 1.0 - p if above else p
        h = (hi - lo) / 400
        return float(h / 3 * (y[0] + y[-1] + 4 * y[1:-1:2].sum() + 2 * y[2:-1:2].sum()))

    best, best_error = (1, 1), float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            fp = area(0.0, threshold, bands, rows, above=False)
            fn = area(threshold, 1.0, bands, rows, above=True)
            error = fp * false_positive_weight + fn * false_negative_weight
            if error < best_error:
                best, best_error = (bands, rows), error
    return best


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Stable 63-bit keys, shape (n, bands) int64: records sharing any key are near-duplicate candidates."""
    signatures = np.atleast_2d(signatures)
    if bands * rows > signatures.shape[1]:
        raise ValueError(f"{bands} bands of {rows} rows need {bands * rows} permutations")
    values = signatures[:, : bands * rows].astype(np.uint64).reshape(len(signatures), bands, rows)
    acc = np.broadcast_to(_splitmix64(np.arange(bands, dtype=np.uint64)), (len(signatures), bands)).copy()
    for r in range(rows):
        acc = _splitmix64(acc * _FOLD + values[:, :, r])
    return (acc & _MASK63).astype(np.int64)


def jaccard_estimate(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    if sig_a.shape != sig_b.shape:
        raise ValueError("signatures of different lengths cannot be compared")
    return float(np.count_nonzero(sig_a == sig_b)) / len(sig_a)


class NearDupIndex:
    """In-memory LSH index (the platform keeps the same band keys in a database table)."""

    def __init__(
        self,
        threshold: float = 0.8,
        num_perm: int = 128,
        weights: tuple[float, float] = RECALL_WEIGHTS,
    ) -> None:
        self.threshold = threshold
        self.num_perm = num_perm
        self.bands, self.rows = lsh_params(threshold, num_perm, *weights)
        self._buckets: dict[int, list[Hashable]] = defaultdict(list)
        self._signatures: dict[Hashable, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._signatures)

    def add(self, key: Hashable, signature: np.ndarray) -> None:
        if key in self._signatures:
            raise ValueError(f"key {key!r} is already in the index")
        self._signatures[key] = signature
        for band_key in band_keys(signature, self.bands, self.rows)[0].tolist():
            self._buckets[band_key].append(key)

    def add_many(self, items: Iterable[tuple[Hashable, np.ndarray]]) -> None:
        for key, signature in items:
            self.add(key, signature)

    def query(self, signature: np.ndarray) -> list[tuple[Hashable, float]]:
        """Keys whose estimated Jaccard similarity is at least the threshold, most similar first."""
        candidates: set[Hashable] = set()
        for band_key in band_keys(signature, self.bands, self.rows)[0].tolist():
            candidates.update(self._buckets.get(band_key, ()))
        found = [(key, jaccard_estimate(signature, self._signatures[key])) for key in candidates]
        return sorted(
            ((key, score) for key, score in found if score >= self.threshold),
            key=lambda item: (-item[1], str(item[0])),
        )


def _fingerprints(keys: np.ndarray) -> np.ndarray:
    """32 bits of each 63-bit band key (its high bits: the key is a splitmix64 output, so any 32 are uniform)."""
    return (np.asarray(keys, dtype=np.int64).ravel() >> np.int64(31)).astype(np.uint32)


class BandIndex:
    """Band key -> record id for the originals of one Datanet, held in memory as sorted runs of
    (32-bit key fingerprint, record id): 8 bytes per band key, so ~112 bytes per record at 14 bands.

    A fingerprint match is only a candidate: the caller compares the stored signatures, so a fingerprint
    collision costs one comparison and can never mark a record. New entries go to a small unsorted tail that is
    sorted into a run before the next query; runs of similar size are merged (as in an LSM tree), up to
    RUN_MAX entries, so adding a batch never rewrites the whole index.
    """

    RUN_MAX = 1 << 22  # 4M entries: a merge peaks at ~64 MB more; 4 runs at 1M records, ~35 at 10M
    _TAIL_MAX = 1 << 16

    def __init__(self, bands: int, rows: int) -> None:
        self.bands = bands
        self.rows = rows
        self.covered_id = 0  # every original of the Datanet with an id up to this is in the index
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []
        self._tail_fp: list[np.ndarray] = []
        self._tail_ids: list[np.ndarray] = []
        self._tail_len = 0
        self.saved_len = 0  # entries when last saved or loaded

    def __len__(self) -> int:
        return sum(len(fp) for fp, _ in self._runs) + self._tail_len

    @property
    def nbytes(self) -> int:
        return sum(fp.nbytes + ids.nbytes for fp, ids in self._runs) + self._tail_len * 12

    def add(self, ids: np.ndarray, keys: np.ndarray) -> None:
        """Add records ``ids`` (n,) with band keys ``keys`` (n, bands)."""
        ids = np.asarray(ids, dtype=np.int64)
        if not len(ids):
            return
        keys = np.asarray(keys).reshape(len(ids), self.bands)
        self._tail_fp.append(_fingerprints(keys))
        self._tail_ids.append(np.repeat(ids, self.bands))
        self._tail_len += len(ids) * self.bands
        if self._tail_len >= self._TAIL_MAX:
            self._flush()

    def _flush(self) -> None:
        if not self._tail_len:
            return
        tail = [(fp, ids) for fp, ids in zip(self._tail_fp, self._tail_ids)]
        self._tail_fp, self._tail_ids, self._tail_len = [], [], 0
        self._runs.append(self._sorted_run(tail))
        while len(self._runs) >= 2:
            (fa, _), (fb, _) = self._runs[-2], self._runs[-1]
            if len(fa) > 2 * len(fb) or len(fa) + len(fb) > self.RUN_MAX:
                break
            parts = self._runs[-2:]
            del self._runs[-2:]
            self._runs.append(self._sorted_run(parts))

    @staticmethod
    def _sorted_run(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """One sorted run from ``parts`` (which the caller no longer holds, so they are freed as they are packed)."""
        if any(len(ids) and (ids.min() < 0 or ids.max() >= 1 << 32) for _, ids in parts):
            fp, ids = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]).astype(np.int64)
            order = np.argsort(fp, kind="stable")
            return fp[order], ids[order]
        # Record ids below 2**32 (all but the largest installations): (fingerprint, id) packed in one uint64,
        # sorted in place, so a merge peaks at 16 bytes per entry; timsort ("stable") merges sorted parts in
        # linear time.
        packed = np.empty(sum(len(fp) for fp, _ in parts), dtype=np.uint64)
        # On a little-endian machine word k's low half is halves[k, 0], its high half halves[k, 1].
        halves = packed.view(np.uint32).reshape(-1, 2)
        high, low = (1, 0) if np.little_endian else (0, 1)
        start = 0
        while parts:
            fp, ids = parts.pop(0)
            end = start + len(fp)
            halves[start:end, high], halves[start:end, low] = fp, ids
            start = end
            del fp, ids
        packed.sort(kind="stable")
        return halves[:, high].copy(), halves[:, low].copy()

    def query(self, keys: np.ndarray) -> list[set[int]]:
        """For each row of ``keys`` (n, bands): the ids of records sharing a band key fingerprint."""
        keys = np.atleast_2d(np.asarray(keys))
        out: list[set[int]] = [set() for _ in range(len(keys))]
        if not len(keys):
            return out
        self._flush()
        fp = _fingerprints(keys)
        # Sorted probes walk each run in order (numpy narrows each search from the last): ~4x faster than random.
        order = np.argsort(fp, kind="stable")
        probes = fp[order]
        for run_fp, run_ids in self._runs:
            lo = np.searchsorted(run_fp, probes, side="left")
            inside = lo < len(run_fp)
            hit = np.flatnonzero(inside & (run_fp[np.minimum(lo, len(run_fp) - 1)] == probes))
            if not len(hit):
                continue
            hi = np.searchsorted(run_fp, probes[hit], side="right")
            for k, start, end in zip(hit.tolist(), lo[hit].tolist(), hi.tolist()):
                out[int(order[k]) // self.bands].update(run_ids[start:end].tolist())
        return out

    def save(self, path: str) -> None:
        """Write the index atomically (a reader sees the old file or the new one, never half of one)."""
        import os
        import uuid

        self._flush()
        arrays: dict[str, np.ndarray] = {
            "meta": np.array([self.bands, self.rows, self.covered_id, len(self._runs)], dtype=np.int64)
        }
        for i, (fp, ids) in enumerate(self._runs):
            arrays[f"fp{i}"], arrays[f"ids{i}"] = fp, ids
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
        self.saved_len = len(self)

    @classmethod
    def load(cls, path: str, bands: int, rows: int) -> BandIndex | None:
        """The index saved at ``path`` if it is readable and was built with the same bands and rows."""
        try:
            with np.load(path) as data:
                n_bands, n_rows, covered, runs = (int(v) for v in data["meta"])
                if (n_bands, n_rows) != (bands, rows):
                    return None
                index = cls(bands, rows)
                index._runs = [(data[f"fp{i}"], data[f"ids{i}"]) for i in range(runs)]
        except (OSError, KeyError, ValueError):
            return None
        index.covered_id = covered
        index.saved_len = len(index)
        return index
