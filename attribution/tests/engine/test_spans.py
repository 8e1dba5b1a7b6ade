from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from attribution.engine import Span, SpanIndex
from attribution.engine.spans import SEPARATOR, suffix_array


def occurs(docs: list[list[int]], pattern: list[int]) -> list[int]:
    m = len(pattern)
    return [d for d, doc in enumerate(docs) if any(doc[i : i + m] == pattern for i in range(len(doc) - m + 1))]


def count(docs: list[list[int]], pattern: list[int]) -> int:
    m = len(pattern)
    return sum(doc[i : i + m] == pattern for doc in docs for i in range(len(doc) - m + 1))


def naive_maximal_spans(docs: list[list[int]], out: list[int], min_len: int) -> list[tuple[int, int]]:
    matching = [(i, j) for i in range(len(out)) for j in range(i + 1, len(out) + 1) if occurs(docs, out[i:j])]
    maximal = [(i, j) for i, j in matching if not any(a <= i and j <= b and (a, b) != (i, j) for a, b in matching)]
    return sorted((i, j) for i, j in maximal if j - i >= min_len)


def test_suffix_array_equals_naive_sort() -> None:
    rng = np.random.default_rng(0)
    for _ in range(30):
        text = rng.integers(-1, 3, size=int(rng.integers(1, 60)))
        expected = sorted(range(len(text)), key=lambda i: text[i:].tolist())
        np.testing.assert_array_equal(suffix_array(text), expected)


@pytest.mark.parametrize("seed", range(25))
def test_find_spans_equals_naive_search_on_random_corpora(seed: int) -> None:
    rng = np.random.default_rng(seed)
    vocab = int(rng.integers(2, 6))
    docs = [rng.integers(0, vocab, size=int(rng.integers(0, 25))).tolist() for _ in range(int(rng.integers(1, 6)))]
    out = rng.integers(0, vocab + 1, size=int(rng.integers(1, 20))).tolist()
    min_len = int(rng.integers(1, 4))
    index = SpanIndex.build(docs, doc_ids=[f"r{i}" for i in range(len(docs))])
    spans = index.find_spans(out, min_len=min_len)
    assert [(s.start, s.end) for s in spans] == naive_maximal_spans(docs, out, min_len)
    for span in spans:
        pattern = out[span.start : span.end]
        assert span.doc_ids == tuple(f"r{d}" for d in occurs(docs, pattern))
        assert span.count == count(docs, pattern) == index.count(pattern)


def test_spans_never_cross_document_boundaries() -> None:
    index = SpanIndex.build([[1, 2, 3], [4, 5, 6]])
    assert [(s.start, s.end) for s in index.find_spans([2, 3, 4, 5], min_len=1)] == [(0, 2), (2, 4)]


def test_credit_favours_long_rare_spans_and_splits_shared_ones() -> None:
    rare = list(range(100, 130))
    common = [7, 8, 9]
    docs = [rare, common + [1], common + [2], common + [3]]
    index = SpanIndex.build(docs, doc_ids=["rare", "a", "b", "c"])
    credit = index.credit(rare[:20] + [999] + common, min_len=3)
    n = index.n_tokens
    assert credit["rare"] == pytest.approx(20 * math.log(1 + n / 1))
    assert credit["a"] == pytest.approx(3 * math.log(1 + n / 3) / 3)
    assert credit["rare"] > 10 * credit["a"]


def test_empty_output_is_refused_with_a_message() -> None:
    index = SpanIndex.build([[1, 2, 3]])
    with pytest.raises(ValueError, match="empty or whitespace"):
        index.find_spans([], min_len=1)
    with pytest.raises(ValueError, match="empty or whitespace"):
        index.credit(np.array([], dtype=np.int64))


def test_single_document_and_no_match() -> None:
    index = SpanIndex.build([[5, 6, 7, 8]], doc_ids=[42])
    assert index.find_spans([1, 2, 3], min_len=1) == []
    assert index.find_spans([6, 7, 8, 9], min_len=2) == [Span(0, 3, (42,), 1)]


def test_separator_is_not_a_token() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        SpanIndex.build([[1, SEPARATOR]])


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    docs = [rng.integers(0, 4, size=30) for _ in range(5)]
    index = SpanIndex.build(docs, doc_ids=["a", "b", "c", "d", "e"])
    index.save(tmp_path / "spans")
    out = rng.integers(0, 4, size=40)
    for loaded in (SpanIndex.load(tmp_path / "spans"), SpanIndex.load(tmp_path / "spans", mmap=True)):
        assert loaded.find_spans(out, min_len=3) == index.find_spans(out, min_len=3)
    with pytest.raises(FileNotFoundError):
        SpanIndex.load(tmp_path / "missing")
