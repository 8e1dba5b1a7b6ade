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
