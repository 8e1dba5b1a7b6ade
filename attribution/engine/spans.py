"""Span index (infini-gram / OLMoTrace style): a suffix array over the training token ids.

Documents are concatenated with a separator (-1) that no output token can equal, so a match never crosses a
document boundary. The suffix array is built by prefix doubling on numpy (O(n log n) per round, O(log L) rounds
for longest repeat L). Queries run one vectorized binary search for all positions of the output at once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SEPARATOR = -1
_PATTERN_END_LOW = -2  # sorts before every text value: a lower-bound search
_PATTERN_END_HIGH = np.iinfo(np.int64).max  # sorts after every text value: an upper-bound search


@dataclass(frozen=True)
class Span:
    """Output tokens [start, end) occur verbatim ``count`` times in the training data, in ``doc_ids``."""

    start: int
    end: int
    doc_ids: tuple[Hashable, ...]
    count: int

    @property
    def length(self) -> int:
        return self.end - self.start


def suffix_array(text: np.ndarray) -> np.ndarray:
    """Suffix array of an int64 array by prefix doubling; suffixes that run off the end sort first."""
    n = len(text)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    _, rank = np.unique(text, return_inverse=True)
    rank = rank.astype(np.int64)
    h = 1
    while True:
        second = np.full(n, -1, dtype=np.int64)
        second[: n - h] = rank[h:] if h < n else second[:0]
        key = rank * (n + 1) + (second + 1)
        sa = np.argsort(key, kind="stable")
        sorted_key = key[sa]
        new_rank_sorted = np.concatenate(([0], np.cumsum(sorted_key[1:] != sorted_key[:-1])))
        rank = np.empty(n, dtype=np.int64)
        rank[sa] = new_rank_sorted
        if new_rank_sorted[-1] == n - 1 or h >= n:
            return sa.astype(np.int64)
        h *= 2


def _compact(values: np.ndarray) -> np.ndarray:
    """int32 where every value fits (token ids and positions below 2**31): half the bytes of int64 on disk and in
    memory, the same answers (queries compare them with int64 patterns)."""
    small = values.size == 0 or (values.min() >= np.iinfo(np.int32).min and values.max() <= np.iinfo(np.int32).max)
    return values.astype(np.int32) if small else values


class SpanIndex:
    def __init__(self, text: np.ndarray, sa: np.ndarray, doc_starts: np.ndarray, doc_ids: list[Hashable]) -> None:
        self.text = text
        self.sa = sa
        self.doc_starts = doc_starts
        self.doc_ids = doc_ids

    @property
    def n_tokens(self) -> int:
        return int(len(self.text) - len(self.doc_ids))

    @classmethod
    def build(cls, docs: Sequence[Sequence[int] | np.ndarray], doc_ids: Sequence[Hashable] | None = None) -> SpanIndex:
        ids = list(range(len(docs))) if doc_ids is None else list(doc_ids)
        if len(ids) != len(docs):
            raise ValueError(f"{len(docs)} documents but {len(ids)} doc_ids")
        if len(set(ids)) != len(ids):
            raise ValueError("doc_ids must be unique")
        arrays = [np.asarray(d, dtype=np.int64).reshape(-1) for d in docs]
        for doc_id, a in zip(ids, arrays, strict=True):
            if a.size and a.min() < 0:
                raise ValueError(f"document {doc_id!r} has a negative token id; token ids must be >= 0")
        lengths = np.array([len(a) + 1 for a in arrays], dtype=np.int64)
        doc_starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
        parts: list[np.ndarray] = []
        for a in arrays:
            parts.append(a)
            parts.append(np.array([SEPARATOR], dtype=np.int64))
        text = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return cls(_compact(text), _compact(suffix_array(text)), doc_starts, ids)

    def count(self, pattern: Sequence[int] | np.ndarray) -> int:
        p = np.asarray(pattern, dtype=np.int64)[None, :]
        lengths = np.array([p.shape[1]])
        lo = self._bound(p, lengths, _PATTERN_END_LOW)
        hi = self._bound(p, lengths, _PATTERN_END_HIGH)
        return int(hi[0] - lo[0])

    def find_spans(self, tokens: Sequence[int] | np.ndarray, min_len: int = 8) -> list[Span]:
        """Maximal spans of ``tokens`` (not inside a longer matching span) of at least ``min_len`` tokens."""
        out = self._check_output(tokens)
        if min_len < 1:
            raise ValueError(f"min_len must be at least 1, got {min_len}")
        m = len(out)
        if len(self.text) == 0:
            return []
        match = self._longest_matches(out)
        ends = np.arange(m) + match
        spans: list[Span] = []
        previous_end = -1
        starts = []
        for i in range(m):
            if ends[i] > previous_end and match[i] >= min_len:
                starts.append(i)
            previous_end = max(previous_end, int(ends[i]))
        if not starts:
            return []
        idx = np.array(starts)
        lengths = match[idx]
        patterns = self._patterns(out, idx, int(lengths.max()))
        lo = self._bound(patterns, lengths, _PATTERN_END_LOW)
        hi = self._bound(patterns, lengths, _PATTERN_END_HIGH)
        for start, length, a, b in zip(idx, lengths, lo, hi, strict=True):
            positions = self.sa[a:b]
            docs = np.unique(np.searchsorted(self.doc_starts, positions, side="right") - 1)
            spans.append(Span(int(start), int(start + length), tuple(self.doc_ids[d] for d in docs), int(b - a)))
        return spans

    def credit(self, tokens: Sequence[int] | np.ndarray, min_len: int = 8) -> dict[Hashable, float]:
        """Per document: sum over matched spans of length * log(1 + N / count), split evenly among its documents.

        Rare long spans dominate; a span found in many documents is worth little and is shared, so copying a
        passage into more documents never multiplies its credit.
        """
        n = max(self.n_tokens, 1)
        credit: dict[Hashable, float] = {}
        for span in self.find_spans(tokens, min_len):
            weight = span.length * math.log(n / span.count + 1.0)
            share = weight / len(span.doc_ids)
            for doc_id in span.doc_ids:
                credit[doc_id] = credit.get(doc_id, 0.0) + share
        return credit

    def save(self, path: str | Path) -> None:
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "text.npy", self.text)
        np.save(folder / "sa.npy", self.sa)
        np.save(folder / "doc_starts.npy", self.doc_starts)
        (folder / "meta.json").write_text(json.dumps({"format_version": 1, "doc_ids": self.doc_ids}))

    @classmethod
    def load(cls, path: str | Path, *, mmap: bool = False) -> SpanIndex:
        folder = Path(path)
        if not (folder / "meta.json").exists():
            raise FileNotFoundError(f"no span index at {folder} (meta.json is missing)")
        meta: dict[str, Any] = json.loads((folder / "meta.json").read_text())
        mode = "r" if mmap else None
        return cls(
            np.load(folder / "text.npy", mmap_mode=mode),
            np.load(folder / "sa.npy", mmap_mode=mode),
            np.load(folder / "doc_starts.npy"),
            list(meta["doc_ids"]),
        )

    @staticmethod
    def _check_output(tokens: Sequence[int] | np.ndarray) -> np.ndarray:
        out = np.asarray(tokens, dtype=np.int64).reshape(-1)
        if out.size == 0:
            raise ValueError(
                "the output has no tokens (empty or whitespace-only text): there is nothing to match against the "
                "training data"
            )
        if out.min() < 0:
            raise ValueError("token ids must be >= 0")
        return out

    @staticmethod
    def _patterns(out: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
        cols = starts[:, None] + np.arange(width)[None, :]
        return np.where(cols < len(out), out[np.minimum(cols, len(out) - 1)], _PATTERN_END_LOW)

    def _bound(self, patterns: np.ndarray, lengths: np.ndarray, end_value: int) -> np.ndarray:
        """First suffix-array slot whose suffix is >= (low) or > (high) each pattern's first ``lengths`` tokens."""
        q, width = patterns.shape
        cols = np.arange(width + 1)
        padded = np.full((q, width + 1), end_value, dtype=np.int64)
        padded[:, :width] = np.where(cols[None, :width] < lengths[:, None], patterns, end_value)
        return self._search(padded)

    def _search(self, padded: np.ndarray) -> np.ndarray:
        q, width = padded.shape
        n = len(self.sa)
        lo = np.zeros(q, dtype=np.int64)
        hi = np.full(q, n, dtype=np.int64)
        offsets = np.arange(width)
        last = len(self.text) - 1
        while True:
            active = lo < hi
            if not active.any():
                return lo
            mid = (lo + hi) // 2
            positions = self.sa[np.minimum(mid, n - 1)][:, None] + offsets[None, :]
            # The text ends with a separator, so reading past the end repeats it and can never match a token.
            window = self.text[np.minimum(positions, last)]
            differs = window != padded
            first = differs.argmax(axis=1)
            rows = np.arange(q)
            less = differs[rows, first] & (window[rows, first] < padded[rows, first])
            lo = np.where(active & less, mid + 1, lo)
            hi = np.where(active & ~less, mid, hi)

    def _longest_matches(self, out: np.ndarray) -> np.ndarray:
        """For each output position, the longest prefix of out[i:] that occurs in the text (0 if none)."""
        m = len(out)
        starts = np.arange(m)
        patterns = self._patterns(out, starts, m)
        lengths = m - starts
        slot = self._bound(patterns, lengths, _PATTERN_END_LOW)
        best = np.zeros(m, dtype=np.int64)
        # The longest common prefix with any suffix is attained by a neighbour of the insertion slot.
        for neighbour in (slot - 1, slot):
            valid = (neighbour >= 0) & (neighbour < len(self.sa))
            positions = self.sa[np.clip(neighbour, 0, len(self.sa) - 1)][:, None] + np.arange(m)[None, :]
            window = self.text[np.minimum(positions, len(self.text) - 1)]
            same = (window == patterns) & (np.arange(m)[None, :] < lengths[:, None])
            lcp = np.where(same.all(axis=1), lengths, (~same).argmax(axis=1))
            best = np.maximum(best, np.where(valid, lcp, 0))
        return best
