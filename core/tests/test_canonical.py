import hashlib
import math

import pytest

from core.canonical import canonical_json, content_hash


def test_canonical_json_sorts_keys_without_spaces_and_keeps_unicode() -> None:
    assert canonical_json({"b": 1, "a": ["é", "x"]}) == '{"a":["é","x"],"b":1}'.encode()


def test_content_hash_is_sha256_of_canonical_json_and_ignores_key_order() -> None:
    assert content_hash({"text": "hi", "label": "x"}) == content_hash({"label": "x", "text": "hi"})
    assert content_hash({"a": 1}) == hashlib.sha256(b'{"a":1}').hexdigest()


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_canonical_json_rejects_nan_and_infinity(value: float) -> None:
    with pytest.raises(ValueError, match="canonical JSON"):
        canonical_json({"x": value})
