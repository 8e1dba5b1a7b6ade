import random
import subprocess
import sys

import numpy as np
import pytest
from datasketch.lsh import _optimal_param

from datanets.ingest.neardup import (
    MinHasher,
    NearDupIndex,
    band_keys,
    exact_jaccard,
    jaccard_estimate,
    lsh_params,
    word_shingles,
)

VOCABULARY = [f"word{i}" for i in range(3000)]


def random_texts(n: int, words: int = 40, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(VOCABULARY, k=words)) for _ in range(n)]


def change_one_word(text: str, position: int = 20) -> str:
    words = text.split()
    words[position] = "changed"
    return " ".join(words)


def test_signatures_shape_dtype_and_case_and_punctuation_insensitivity() -> None:
    hasher = MinHasher()
    signatures = hasher.signatures(["Hello, World again!", "hello world AGAIN", "", "one"])
    assert signatures.shape == (4, 128)
    assert signatures.dtype == np.uint32
    assert (signatures[0] == signatures[1]).all()
    assert MinHasher().signatures([]).shape == (0, 128)


def test_short_texts_are_one_shingle() -> None:
    assert word_shingles("Just two", ngram=3) == {("just", "two")}
    hasher = MinHasher()
    assert jaccard_estimate(hasher.signature("just two"), hasher.signature("two just")) < 0.2


def test_estimates_are_close_to_exact_jaccard() -> None:
    hasher = MinHasher()
    base = random_texts(1)[0].split()
    rng = random.Random(3)
    for changed in (1, 3, 6, 10, 20, 40):
        words = list(base)
        for position in rng.sample(range(40), changed):
            words[position] = rng.choice(VOCABULARY)
        other = " ".join(words)
        exact = exact_jaccard(" ".join(base), other)
        estimate = jaccard_estimate(hasher.signature(" ".join(base)), hasher.signature(other))
        assert abs(estimate - exact) < 0.15, (changed, exact, estimate)


def test_batch_and_single_signatures_agree_across_chunks() -> None:
    hasher = MinHasher()
    texts = [*random_texts(300), "a b", ""]
    batch = hasher.signatures(texts)
    assert all((batch[i] == hasher.signature(text)).all() for i, text in enumerate(texts))


def test_deterministic_across_processes() -> None:
    code = (
        "from datanets.ingest.neardup import MinHasher, band_keys;"
        "s = MinHasher().signatures(['the quick brown fox jumps over the lazy dog']);"
        "print(s[0, :8].tolist(), band_keys(s, 9, 13)[0, :3].tolist())"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1
    signature = MinHasher().signatures(["the quick brown fox jumps over the lazy dog"])
    assert outputs.pop().strip() == f"{signature[0, :8].tolist()} {band_keys(signature, 9, 13)[0, :3].tolist()}"


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.8, 0.9])
def test_lsh_params_match_datasketch(threshold: float) -> None:
    assert lsh_params(threshold, 128) == _optimal_param(threshold, 128, 0.5, 0.5)


def test_band_keys_are_non_negative_int64_and_mix_in_the_band() -> None:
    signatures = np.zeros((2, 128), dtype=np.uint32)
    keys = band_keys(signatures, 9, 13)
    assert keys.shape == (2, 9)
    assert keys.dtype == np.int64
    assert (keys >= 0).all()
    assert len(set(keys[0].tolist())) == 9


def test_index_finds_near_duplicates_and_not_unrelated_texts() -> None:
    hasher = MinHasher()
    texts = random_texts(500)
    index = NearDupIndex(threshold=0.7)
    assert (index.bands, index.rows) == (20, 6)
    for key, signature in enumerate(hasher.signatures(texts)):
        index.add(key, signature)
    queries = [change_one_word(texts[i], position=i % 40) for i in range(50)] + random_texts(50, seed=99)
    signatures = hasher.signatures(queries)
    for i in range(50):
        found = index.query(signatures[i])
        assert found
        assert found[0][0] == i
        assert found[0][1] >= 0.7
        assert abs(found[0][1] - exact_jaccard(texts[i], queries[i])) < 0.15
    assert all(index.query(signature) == [] for signature in signatures[50:])
    with pytest.raises(ValueError, match="already in the index"):
        index.add(0, signatures[0])


def test_band_index_finds_what_shares_a_band_and_survives_save_and_load(tmp_path) -> None:
    from datanets.ingest.neardup import BandIndex

    hasher = MinHasher()
    texts = random_texts(300)
    bands, rows = lsh_params(0.8, 128, 0.1, 0.9)
    keys = band_keys(hasher.signatures(texts), bands, rows)
    index = BandIndex(bands, rows)
    index._TAIL_MAX = 64  # many small runs, merged as they grow
    for start in range(0, 300, 25):
        index.add(np.arange(start, start + 25) + 1000, keys[start : start + 25])
    assert len(index) == 300 * bands
    probe = band_keys(
        hasher.signatures([change_one_word(texts[17]), texts[250], "nothing like the others"]), bands, rows
    )
    found = index.query(probe)
    assert 1017 in found[0] and 1250 in found[1]
    assert len(found[2]) == 0
    path = str(tmp_path / "index.npz")
    index.covered_id = 1299
    index.save(path)
    loaded = BandIndex.load(path, bands, rows)
    assert loaded is not None and loaded.covered_id == 1299 and loaded.query(probe) == found
    assert BandIndex.load(path, bands + 1, rows) is None  # built for other LSH parameters: rebuilt instead
    assert BandIndex.load(str(tmp_path / "missing.npz"), bands, rows) is None
