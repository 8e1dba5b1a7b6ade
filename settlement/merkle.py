"""OpenZeppelin ``StandardMerkleTree`` in Python, byte-for-byte compatible with ``@openzeppelin/merkle-tree``.

A leaf is ``keccak256(keccak256(abi.encode(values)))``, an inner node is the keccak256 of its two children sorted
as bytes, leaves are sorted by hash and laid out as in the JavaScript library, so its ``dump()`` loads there (and
the other way round) and its proofs verify with OpenZeppelin's ``MerkleProof`` on chain.

Trees of ``["address", "uint256"]`` (the settlement tree) hash in batches: a compiled keccak-f[1600] (numba) when
it is installed, a numpy one over uint64 lanes otherwise. With numba, a leaf's two hashes run in one compiled pass,
each level of inner nodes compares and hashes its pairs in one compiled pass, and addresses are hex-decoded compiled;
all three split across one thread per core (they release the GIL). Other leaf encodings take the per-leaf path.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from operator import itemgetter
from typing import Any

import numpy as np
from eth_abi import encode as abi_encode
from eth_abi.exceptions import EncodingError

try:
    import numba
except ImportError:  # pragma: no cover - depends on the installed extras
    numba = None

try:
    from sha3 import keccak_256 as _keccak_c
except ImportError:  # pragma: no cover - depends on the installed extras
    _keccak_c = None

__all__ = [
    "BACKEND",
    "StandardMerkleTree",
    "keccak256",
    "keccak256_batch",
    "leaf_hash",
    "verify",
]

LeafValue = Sequence[Any]
ADDRESS_AMOUNT = ("address", "uint256")

_RC = np.array(
    [
        0x0000000000000001, 0x0000000000008082, 0x800000000000808A, 0x8000000080008000,
        0x000000000000808B, 0x0000000080000001, 0x8000000080008081, 0x8000000000008009,
        0x000000000000008A, 0x0000000000000088, 0x0000000080008009, 0x000000008000000A,
        0x000000008000808B, 0x800000000000008B, 0x8000000000008089, 0x8000000000008003,
        0x8000000000008002, 0x8000000000000080, 0x000000000000800A, 0x800000008000000A,
        0x8000000080008081, 0x8000000000008080, 0x0000000080000001, 0x8000000080008008,
    ],
    dtype=np.uint64,
)  # fmt: skip
# _ROT[x][y]: rho offsets of lane (x, y)
_ROT = (
    (0, 36, 3, 41, 18),
    (1, 44, 10, 45, 2),
    (62, 6, 43, 15, 61),
    (28, 55, 25, 21, 56),
    (27, 20, 39, 8, 14),
)
_RATE_WORDS = 17  # keccak256 absorbs 136 bytes per block


def keccak256(data: bytes) -> bytes:
    """Keccak-256 (Ethereum's, not SHA3-256) of one message."""
    if _keccak_c is not None:
        return _keccak_c(data).digest()
    from eth_hash.auto import keccak

    return keccak(data)


# The round below is unrolled into locals so numba keeps the whole state in registers. It is the textbook
# theta / rho+pi / chi / iota over lanes a{x+5y}, with theta's D folded into rho.
if numba is not None:

    @numba.njit(cache=True, nogil=True, inline="always")
    def _rotl(x: np.uint64, r: int) -> np.uint64:
        return (x << r) | (x >> (64 - r))

    @numba.njit(cache=True, nogil=True)
    def _permute(st: np.ndarray, rc: np.ndarray) -> None:
        """keccak-f[1600] on the 25 lanes of ``st``, in place."""
        a00, a01, a02, a03, a04 = st[0], st[1], st[2], st[3], st[4]
        a05, a06, a07, a08, a09 = st[5], st[6], st[7], st[8], st[9]
        a10, a11, a12, a13, a14 = st[10], st[11], st[12], st[13], st[14]
        a15, a16, a17, a18, a19 = st[15], st[16], st[17], st[18], st[19]
        a20, a21, a22, a23, a24 = st[20], st[21], st[22], st[23], st[24]
        for rnd in range(24):
            c0 = a00 ^ a05 ^ a10 ^ a15 ^ a20
            c1 = a01 ^ a06 ^ a11 ^ a16 ^ a21
            c2 = a02 ^ a07 ^ a12 ^ a17 ^ a22
            c3 = a03 ^ a08 ^ a13 ^ a18 ^ a23
            c4 = a04 ^ a09 ^ a14 ^ a19 ^ a24
            d0 = c4 ^ _rotl(c1, 1)
            d1 = c0 ^ _rotl(c2, 1)
            d2 = c1 ^ _rotl(c3, 1)
            d3 = c2 ^ _rotl(c4, 1)
            d4 = c3 ^ _rotl(c0, 1)
            b00 = a00 ^ d0
            b16 = _rotl(a05 ^ d0, 36)
            b07 = _rotl(a10 ^ d0, 3)
            b23 = _rotl(a15 ^ d0, 41)
            b14 = _rotl(a20 ^ d0, 18)
            b10 = _rotl(a01 ^ d1, 1)
            b01 = _rotl(a06 ^ d1, 44)
            b17 = _rotl(a11 ^ d1, 10)
            b08 = _rotl(a16 ^ d1, 45)
            b24 = _rotl(a21 ^ d1, 2)
            b20 = _rotl(a02 ^ d2, 62)
            b11 = _rotl(a07 ^ d2, 6)
            b02 = _rotl(a12 ^ d2, 43)
            b18 = _rotl(a17 ^ d2, 15)
            b09 = _rotl(a22 ^ d2, 61)
            b05 = _rotl(a03 ^ d3, 28)
            b21 = _rotl(a08 ^ d3, 55)
            b12 = _rotl(a13 ^ d3, 25)
            b03 = _rotl(a18 ^ d3, 21)
            b19 = _rotl(a23 ^ d3, 56)
            b15 = _rotl(a04 ^ d4, 27)
            b06 = _rotl(a09 ^ d4, 20)
            b22 = _rotl(a14 ^ d4, 39)
            b13 = _rotl(a19 ^ d4, 8)
            b04 = _rotl(a24 ^ d4, 14)
            a00 = b00 ^ (~b01 & b02)
            a01 = b01 ^ (~b02 & b03)
            a02 = b02 ^ (~b03 & b04)
            a03 = b03 ^ (~b04 & b00)
            a04 = b04 ^ (~b00 & b01)
            a05 = b05 ^ (~b06 & b07)
            a06 = b06 ^ (~b07 & b08)
            a07 = b07 ^ (~b08 & b09)
            a08 = b08 ^ (~b09 & b05)
            a09 = b09 ^ (~b05 & b06)
            a10 = b10 ^ (~b11 & b12)
            a11 = b11 ^ (~b12 & b13)
            a12 = b12 ^ (~b13 & b14)
            a13 = b13 ^ (~b14 & b10)
            a14 = b14 ^ (~b10 & b11)
            a15 = b15 ^ (~b16 & b17)
            a16 = b16 ^ (~b17 & b18)
            a17 = b17 ^ (~b18 & b19)
            a18 = b18 ^ (~b19 & b15)
            a19 = b19 ^ (~b15 & b16)
            a20 = b20 ^ (~b21 & b22)
            a21 = b21 ^ (~b22 & b23)
            a22 = b22 ^ (~b23 & b24)
            a23 = b23 ^ (~b24 & b20)
            a24 = b24 ^ (~b20 & b21)
            a00 ^= rc[rnd]
        st[0], st[1], st[2], st[3], st[4] = a00, a01, a02, a03, a04
        st[5], st[6], st[7], st[8], st[9] = a05, a06, a07, a08, a09
        st[10], st[11], st[12], st[13], st[14] = a10, a11, a12, a13, a14
        st[15], st[16], st[17], st[18], st[19] = a15, a16, a17, a18, a19
        st[20], st[21], st[22], st[23], st[24] = a20, a21, a22, a23, a24

    @numba.njit(cache=True, nogil=True, inline="always")
    def _absorb(st: np.ndarray, k: int) -> None:
        # keccak256's pad10*1 for a k-lane message in one block
        st[k] ^= np.uint64(1)
        st[16] ^= np.uint64(0x8000000000000000)

    @numba.njit(cache=True, nogil=True)
    def _keccak_words_compiled(words: np.ndarray, out: np.ndarray, rc: np.ndarray) -> None:
        n, k = words.shape
        st = np.zeros(25, np.uint64)
        for m in range(n):
            st[:] = 0
            st[:k] = words[m]
            _absorb(st, k)
            _permute(st, rc)
            out[m] = st[:4]

    @numba.njit(cache=True, nogil=True)
    def _leaf_hashes_compiled(words: np.ndarray, out: np.ndarray, rc: np.ndarray) -> None:
        """keccak256(keccak256(message)) of each row of 8 lanes (one abi-encoded address and uint256)."""
        st = np.zeros(25, np.uint64)
        for m in range(len(words)):
            st[:] = 0
            st[:8] = words[m]
            _absorb(st, 8)
            _permute(st, rc)
            st[4:] = 0
            _absorb(st, 4)
            _permute(st, rc)
            out[m] = st[:4]

    @numba.njit(cache=True, nogil=True)
    def _level_compiled(nodes: np.ndarray, lanes: np.ndarray, lo: int, hi: int, rc: np.ndarray) -> None:
        """Nodes lo..hi-1 of the tree array from their children 2i+1, 2i+2 (hashed as the sorted pair).
        ``nodes`` (bytes) and ``lanes`` (uint64) are two views of one buffer."""
        st = np.zeros(25, np.uint64)
        for i in range(lo, hi):
            left, right = 2 * i + 1, 2 * i + 2
            for b in range(32):
                if nodes[left, b] != nodes[right, b]:
                    if nodes[right, b] < nodes[left, b]:
                        left, right = right, left
                    break
            st[:] = 0
            st[:4] = lanes[left]
            st[4:8] = lanes[right]
            _absorb(st, 8)
            _permute(st, rc)
            lanes[i] = st[:4]

    @numba.njit(cache=True, nogil=True)
    def _hex_decode_compiled(chars: np.ndarray, digits: np.ndarray, out: np.ndarray) -> bool:
        """Rows of '0x' + 40 hex digits into 20 bytes each; True if any row is malformed."""
        for m in range(len(chars)):
            if chars[m, 0] != 48 or (chars[m, 1] != 120 and chars[m, 1] != 88):
                return True
            for i in range(20):
                hi, lo = digits[chars[m, 2 + 2 * i]], digits[chars[m, 3 + 2 * i]]
                if hi == 255 or lo == 255:
                    return True
                out[m, i] = (hi << 4) | lo
        return False


def _keccak_words_numpy(words: np.ndarray, out: np.ndarray) -> None:
    """keccak256 of n single-block messages given as uint64 lanes, 24 rounds vectorized across messages."""
    n, k = words.shape
    state = np.zeros((25, n), dtype=np.uint64)
    state[:k] = words.T
    state[k] ^= np.uint64(1)
    state[16] ^= np.uint64(0x8000000000000000)
    a5 = state.reshape(5, 5, n)  # [y, x]
    cx = np.empty((7, n), np.uint64)  # C[4], C[0..4], C[0]: the wrap-around neighbours as plain slices
    d = np.empty((5, n), np.uint64)
    t5 = np.empty((5, n), np.uint64)
    bx = np.empty((5, 7, n), np.uint64)  # B[y, x] with x = 5, 6 repeating x = 0, 1 for chi
    t = np.empty((5, 5, n), np.uint64)
    tmp = np.empty(n, np.uint64)
    plan = []
    for x in range(5):
        for y in range(5):
            r = _ROT[x][y]
            plan.append(
                (
                    state[x + 5 * y],
                    bx[(2 * x + 3 * y) % 5, y],
                    r,
                    np.uint64(r),
                    np.uint64(64 - r),
                )
            )
    one, s63 = np.uint64(1), np.uint64(63)
    xor = np.bitwise_xor
    for rnd in range(24):
        xor.reduce(a5, axis=0, out=cx[1:6])
        cx[0] = cx[5]
        cx[6] = cx[1]
        np.left_shift(cx[2:7], one, out=d)
        np.right_shift(cx[2:7], s63, out=t5)
        d |= t5
        d ^= cx[0:5]
        a5 ^= d
        for lane, target, r, left, right in plan:
            if r == 0:
                target[...] = lane
            else:
                np.left_shift(lane, left, out=target)
                np.right_shift(lane, right, out=tmp)
                target |= tmp
        bx[:, 5:7] = bx[:, 0:2]
        np.invert(bx[:, 1:6], out=t)
        t &= bx[:, 2:7]
        xor(bx[:, 0:5], t, out=a5)
        state[0] ^= _RC[rnd]
    out[:] = state[:4].T


BACKEND = "numba" if numba is not None else "numpy"
_PARALLEL_MIN = 1 << 15
_THREADS = max(1, min(4, os.cpu_count() or 1))


def _run_batch(words: np.ndarray, out: np.ndarray) -> None:
    if numba is not None:
        _keccak_words_compiled(words, out, _RC)
    else:
        for lo in range(0, len(words), 4096):
            _keccak_words_numpy(words[lo : lo + 4096], out[lo : lo + 4096])


def _in_threads(n: int, work: Callable[[int, int], None]) -> None:
    """``work(lo, hi)`` over [0, n) in one contiguous slice per core (the kernels release the GIL)."""
    if n < _PARALLEL_MIN or _THREADS == 1:
        work(0, n)
        return
    step = -(-n // _THREADS)
    with ThreadPoolExecutor(_THREADS) as pool:
        list(pool.map(lambda lo: work(lo, min(n, lo + step)), range(0, n, step)))


def keccak256_words(words: np.ndarray) -> np.ndarray:
    """keccak256 of each row of ``words`` (n x k uint64 little-endian lanes, k < 17): n x 4 uint64 lanes."""
    if words.ndim != 2 or words.shape[1] >= _RATE_WORDS:
        raise ValueError("each message must fit one 136-byte block: an (n, k < 17) array of uint64 lanes")
    words = np.ascontiguousarray(words, dtype=np.uint64)
    out = np.empty((len(words), 4), dtype=np.uint64)
    _in_threads(len(words), lambda lo, hi: _run_batch(words[lo:hi], out[lo:hi]))
    return out


def keccak256_batch(messages: np.ndarray) -> np.ndarray:
    """keccak256 of each row of an (n, L) uint8 array, L a multiple of 8 below 136: an (n, 32) uint8 array."""
    messages = np.ascontiguousarray(messages, dtype=np.uint8)
    if messages.ndim != 2 or messages.shape[1] % 8:
        raise ValueError("messages must be an (n, L) uint8 array with L a multiple of 8")
    return keccak256_words(messages.view("<u8")).view(np.uint8)


# ---- leaf encoding -------------------------------------------------------------------------------------------


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("a bool is not a number here")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        return int(text, 16) if text[:2].lower() == "0x" else int(text, 10)
    raise TypeError(f"expected an integer or a decimal/0x string, got {type(value).__name__}")


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str) and value[:2].lower() == "0x":
        return bytes.fromhex(value[2:])
    raise TypeError(f"expected bytes or a 0x hex string, got {value!r}")


def _normalize(abi_type: str, value: Any) -> Any:
    """Turn a value as the JS library accepts it (decimal strings for numbers, hex for bytes) into eth_abi's."""
    if abi_type.endswith("]"):
        inner = abi_type[: abi_type.rindex("[")]
        return [_normalize(inner, v) for v in value]
    if abi_type.startswith(("uint", "int")):
        return _as_int(value)
    if abi_type.startswith("bytes"):
        return _as_bytes(value)
    if abi_type == "address":
        if isinstance(value, bytes | bytearray):
            return "0x" + bytes(value).hex()
        if not isinstance(value, str) or len(value) != 42 or value[:2].lower() != "0x":
            raise ValueError(f"not an address: {value!r}")
        return value.lower()
    if abi_type == "bool" and not isinstance(value, bool):
        raise TypeError(f"expected a bool, got {value!r}")
    return value


def _encode(leaf_encoding: Sequence[str], value: LeafValue) -> bytes:
    if len(value) != len(leaf_encoding):
        raise ValueError(f"value {value!r} does not match the leaf encoding {list(leaf_encoding)}")
    try:
        return abi_encode(list(leaf_encoding), [_normalize(t, v) for t, v in zip(leaf_encoding, value, strict=True)])
    except EncodingError as exc:
        raise ValueError(f"cannot encode {value!r} as {list(leaf_encoding)}: {exc}") from exc


def leaf_hash(value: LeafValue, leaf_encoding: Sequence[str] = ADDRESS_AMOUNT) -> str:
    """The leaf hash of one value: keccak256(keccak256(abi.encode(value))), as 0x hex."""
    return "0x" + keccak256(keccak256(_encode(leaf_encoding, value))).hex()


def _node_hash(a: bytes, b: bytes) -> bytes:
    return keccak256(a + b if a <= b else b + a)


def process_proof(leaf: str | bytes, proof: Sequence[str | bytes]) -> str:
    """Fold a proof onto a leaf hash, as OpenZeppelin's MerkleProof.processProof does."""
    node = _as_bytes(leaf)
    for sibling in proof:
        node = _node_hash(node, _as_bytes(sibling))
    return "0x" + node.hex()


def verify(
    root: str | bytes,
    value: LeafValue,
    proof: Sequence[str | bytes],
    leaf_encoding: Sequence[str] = ADDRESS_AMOUNT,
) -> bool:
    """Whether ``proof`` proves ``value`` under ``root``, without the tree."""
    return process_proof(leaf_hash(value, leaf_encoding), proof) == "0x" + _as_bytes(root).hex()


def _encode_address_amount(values: Sequence[LeafValue]) -> np.ndarray:
    """abi.encode(address, uint256) of every value at once: an (n, 64) uint8 array."""
    n = len(values)
    try:
        if set(map(len, values)) != {2}:
            raise ValueError("each value must be an (address, amount) pair")
        # itemgetter over the list, not zip(*values): unpacking a million arguments costs a second
        addresses, amounts = list(map(itemgetter(0), values)), list(map(itemgetter(1), values))
        # map() over builtins keeps the per-value work in C; anything unusual takes the careful path below
        if set(map(type, addresses)) != {str} or set(map(len, addresses)) != {42}:
            addresses = tuple(map(_address_text, addresses))
        if set(map(type, amounts)) != {int}:
            amounts = tuple(map(_as_int, amounts))
        address_bytes = _addresses_from_hex("".join(addresses), n)
        amount_bytes = b"".join(map(_UINT256, amounts))
    except (OverflowError, TypeError, ValueError) as exc:
        # the per-leaf encoder names the offending value
        for value in values:
            _encode(ADDRESS_AMOUNT, value)
        raise ValueError(str(exc)) from exc
    out = np.zeros((n, 64), dtype=np.uint8)
    out[:, 12:32] = address_bytes
    out[:, 32:] = np.frombuffer(amount_bytes, dtype=np.uint8).reshape(n, 32)
    return out


_HEX_DIGITS = np.full(256, 255, dtype=np.uint8)
_HEX_DIGITS[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16)
_HEX_DIGITS[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16)


def _addresses_from_hex(text: str, n: int) -> np.ndarray:
    """n 42-character 0x addresses joined into one string, as an (n, 20) uint8 array (decoded in numpy: a third of
    the time of slicing off each prefix and bytes.fromhex)."""
    chars = np.frombuffer(text.encode("ascii"), dtype=np.uint8).reshape(n, 42)
    if numba is not None:
        out = np.empty((n, 20), dtype=np.uint8)
        bad = _hex_decode_compiled(chars, _HEX_DIGITS, out)
        if bad:
            raise ValueError("addresses must be 0x-prefixed and hexadecimal")
        return out
    if np.any(chars[:, 0] != ord("0")) or np.any((chars[:, 1] != ord("x")) & (chars[:, 1] != ord("X"))):
        raise ValueError("addresses must be 0x-prefixed")
    digits = _HEX_DIGITS[chars[:, 2:]]
    if np.any(digits == 255):
        raise ValueError("addresses must be hexadecimal")
    return (digits[:, 0::2] << 4) | digits[:, 1::2]


_UINT256 = partial(int.to_bytes, length=32, byteorder="big", signed=False)


def _address_text(value: Any) -> str:
    if isinstance(value, bytes | bytearray) and len(value) == 20:
        return "0x" + bytes(value).hex()
    if isinstance(value, str) and len(value) == 42:
        return value
    raise ValueError(f"not an address: {value!r}")


# ---- the tree ------------------------------------------------------------------------------------------------


def _big_endian_keys(hashes: np.ndarray) -> np.ndarray:
    """(n, 32) uint8 hashes as (n, 4) big-endian uint64 words, so that word order is byte order."""
    return np.ascontiguousarray(hashes).view(">u8").astype(np.uint64)


def _less(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise a < b for (n, 4) big-endian word keys."""
    result = a[:, 3] < b[:, 3]
    for w in (2, 1, 0):
        result = (a[:, w] < b[:, w]) | ((a[:, w] == b[:, w]) & result)
    return result


def _sort_order(hashes: np.ndarray) -> np.ndarray:
    keys = _big_endian_keys(hashes)
    order = np.argsort(keys[:, 0], kind="stable")
    first = keys[order, 0]
    if np.any(first[1:] == first[:-1]):
        # ties on the first 8 bytes are rare (equal leaves); lexsort settles them, stably, like the JS sort
        order = np.lexsort((keys[:, 3], keys[:, 2], keys[:, 1], keys[:, 0]))
    return order


def _hash_leaves(leaf_encoding: Sequence[str], values: Sequence[LeafValue]) -> np.ndarray:
    if tuple(leaf_encoding) == ADDRESS_AMOUNT:
        encoded = _encode_address_amount(values)
        if numba is None:
            return keccak256_batch(keccak256_batch(encoded))
        words = encoded.view("<u8")
        out = np.empty((len(values), 4), dtype=np.uint64)
        _in_threads(len(words), lambda lo, hi: _leaf_hashes_compiled(words[lo:hi], out[lo:hi], _RC))
        return out.view(np.uint8)
    out = np.empty((len(values), 32), dtype=np.uint8)
    for i, value in enumerate(values):
        out[i] = np.frombuffer(keccak256(keccak256(_encode(leaf_encoding, value))), dtype=np.uint8)
    return out


def _build_nodes(leaves_sorted: np.ndarray) -> np.ndarray:
    """The JS library's array layout: node i has children 2i+1 and 2i+2; leaf j of the sorted order at 2n-2-j."""
    n = len(leaves_sorted)
    nodes = np.empty((2 * n - 1, 32), dtype=np.uint8)
    nodes[n - 1 :] = leaves_sorted[::-1]
    depth = (2 * n - 2).bit_length() - 1 if n > 1 else 0
    if numba is not None:
        lanes = nodes.view("<u8")
        for d in range(depth, -1, -1):
            lo, hi = (1 << d) - 1, min((1 << (d + 1)) - 2, n - 2) + 1
            if lo < hi:
                _in_threads(hi - lo, lambda a, b, lo=lo: _level_compiled(nodes, lanes, lo + a, lo + b, _RC))
        return nodes
    # every internal node of one depth hashes in one batch; its children sit in one contiguous run below
    for d in range(depth, -1, -1):
        lo, hi = (1 << d) - 1, min((1 << (d + 1)) - 2, n - 2)
        if lo > hi:
            continue
        left = nodes[2 * lo + 1 : 2 * hi + 2 : 2]
        right = nodes[2 * lo + 2 : 2 * hi + 3 : 2]
        swap = _less(_big_endian_keys(right), _big_endian_keys(left))
        pairs = np.empty((hi - lo + 1, 64), dtype=np.uint8)
        pairs[:, :32] = np.where(swap[:, None], right, left)
        pairs[:, 32:] = np.where(swap[:, None], left, right)
        nodes[lo : hi + 1] = keccak256_batch(pairs)
    return nodes


def _hex_rows(rows: np.ndarray) -> list[str]:
    text = np.ascontiguousarray(rows).tobytes().hex()
    return ["0x" + text[i : i + 64] for i in range(0, len(text), 64)]


def _dump_value(abi_type: str, value: Any) -> Any:
    """JSON-safe form of one value, as a JS user would give it: big numbers as decimal strings, bytes as hex."""
    if abi_type.endswith("]"):
        inner = abi_type[: abi_type.rindex("[")]
        return [_dump_value(inner, v) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "0x" + bytes(value).hex()
    return value


class StandardMerkleTree:
    """Mirror of ``StandardMerkleTree`` from ``@openzeppelin/merkle-tree`` (format ``standard-v1``)."""

    def __init__(
        self,
        nodes: np.ndarray,
        values: list[LeafValue],
        tree_indices: np.ndarray,
        leaf_encoding: list[str],
    ):
        self._nodes = nodes
        self.values = values
        self.tree_indices = tree_indices
        self.leaf_encoding = leaf_encoding
        self._lookup: dict[bytes, int] | None = None

    @classmethod
    def of(cls, values: Sequence[LeafValue], leaf_encoding: Sequence[str]) -> StandardMerkleTree:
        """Build the tree of ``values`` (sequences matching ``leaf_encoding``), leaves sorted like the JS default."""
        values = [tuple(v) for v in values]
        if not values:
            raise ValueError("Expected non-zero number of leaves")
        hashes = _hash_leaves(leaf_encoding, values)
        order = _sort_order(hashes)
        nodes = _build_nodes(hashes[order])
        n = len(values)
        tree_indices = np.empty(n, dtype=np.int64)
        tree_indices[order] = 2 * n - 2 - np.arange(n)
        return cls(nodes, values, tree_indices, list(leaf_encoding))

    @classmethod
    def load(cls, data: dict[str, Any]) -> StandardMerkleTree:
        """Read a ``standard-v1`` dump (ours or the JS library's) and check that it is a valid tree."""
        if data.get("format") != "standard-v1":
            raise ValueError(f"Unknown format '{data.get('format')}'")
        if data.get("leafEncoding") is None:
            raise ValueError("Expected leaf encoding")
        nodes = np.frombuffer(bytes.fromhex("".join(h[2:] for h in data["tree"])), dtype=np.uint8)
        if len(nodes) != 32 * len(data["tree"]) or not data["tree"]:
            raise ValueError("Merkle tree nodes must be 32 bytes")
        tree = cls(
            nodes.reshape(-1, 32).copy(),
            [tuple(v["value"]) for v in data["values"]],
            np.array([v["treeIndex"] for v in data["values"]], dtype=np.int64),
            list(data["leafEncoding"]),
        )
        tree.validate()
        return tree

    @staticmethod
    def verify(
        root: str | bytes,
        leaf_encoding: Sequence[str],
        leaf: LeafValue,
        proof: Sequence[str],
    ) -> bool:
        """Static check of a proof against a root, as ``StandardMerkleTree.verify`` in JS."""
        return verify(root, leaf, proof, leaf_encoding)

    @property
    def root(self) -> str:
        return "0x" + self._nodes[0].tobytes().hex()

    @property
    def tree(self) -> list[str]:
        return _hex_rows(self._nodes)

    def __len__(self) -> int:
        return len(self.values)

    def at(self, index: int) -> LeafValue | None:
        return self.values[index] if -len(self.values) <= index < len(self.values) else None

    def entries(self) -> Iterator[tuple[int, LeafValue]]:
        yield from enumerate(self.values)

    def leaf_hash(self, value: LeafValue) -> str:
        return leaf_hash(value, self.leaf_encoding)

    def leaf_lookup(self, value: LeafValue) -> int:
        """The index of ``value`` among the values as given."""
        if self._lookup is None:
            self._lookup = {self._nodes[t].tobytes(): i for i, t in enumerate(self.tree_indices.tolist())}
        index = self._lookup.get(bytes.fromhex(self.leaf_hash(value)[2:]))
        if index is None:
            raise ValueError("Leaf is not in tree")
        return index

    def get_proof(self, leaf: int | LeafValue) -> list[str]:
        """Sibling hashes from the leaf up, for the ``leaf``-th value as given (or for that value itself)."""
        index = leaf if isinstance(leaf, int) else self.leaf_lookup(leaf)
        self._validate_value_at(index)
        tree_index = int(self.tree_indices[index])
        siblings = []
        while tree_index > 0:
            siblings.append(tree_index + 1 if tree_index % 2 else tree_index - 1)
            tree_index = (tree_index - 1) // 2
        proof = _hex_rows(self._nodes[siblings]) if siblings else []
        if process_proof(self._nodes[self.tree_indices[index]].tobytes(), proof) != self.root:
            raise AssertionError("Unable to prove value")
        return proof

    def verify_leaf(self, leaf: int | LeafValue, proof: Sequence[str]) -> bool:
        """Instance ``verify`` of the JS library (renamed: Python cannot share the name with the static one)."""
        value = self.values[leaf] if isinstance(leaf, int) else leaf
        return process_proof(self.leaf_hash(value), proof) == self.root

    def validate(self) -> None:
        """Check every value against its leaf and every node against its children (as the JS ``validate``)."""
        n_nodes = len(self._nodes)
        indices = self.tree_indices
        if len(indices) and (indices.min() < 0 or indices.max() >= n_nodes):
            raise ValueError("Index out of bounds")
        expected = _hash_leaves(self.leaf_encoding, self.values)
        if not np.array_equal(self._nodes[indices], expected):
            raise ValueError("Merkle tree does not contain the expected value")
        internal = np.arange((n_nodes - 1) // 2)
        if n_nodes % 2 == 0:
            raise ValueError("Merkle tree is invalid")
        if len(internal):
            left, right = self._nodes[2 * internal + 1], self._nodes[2 * internal + 2]
            swap = _less(_big_endian_keys(right), _big_endian_keys(left))
            pairs = np.concatenate(
                [
                    np.where(swap[:, None], right, left),
                    np.where(swap[:, None], left, right),
                ],
                1,
            )
            if not np.array_equal(keccak256_batch(pairs), self._nodes[internal]):
                raise ValueError("Merkle tree is invalid")

    def dump(self) -> dict[str, Any]:
        """The ``standard-v1`` dump; ``@openzeppelin/merkle-tree`` loads it with ``StandardMerkleTree.load``."""
        encoding = self.leaf_encoding
        return {
            "format": "standard-v1",
            "leafEncoding": list(encoding),
            "tree": self.tree,
            "values": [
                {
                    "value": [_dump_value(t, v) for t, v in zip(encoding, value, strict=True)],
                    "treeIndex": int(i),
                }
                for value, i in zip(self.values, self.tree_indices.tolist(), strict=True)
            ],
        }

    def render(self) -> str:
        """The text picture of the JS ``render()``."""
        nodes = self.tree
        lines: list[str] = []
        stack: list[tuple[int, list[int]]] = [(0, [])]
        while stack:
            i, path = stack.pop()
            prefix = "".join(["   ", "│  "][p] for p in path[:-1]) + "".join(["└─ ", "├─ "][p] for p in path[-1:])
            lines.append(f"{prefix}{i}) {nodes[i]}")
            if 2 * i + 2 < len(nodes):
                stack.append((2 * i + 2, [*path, 0]))
                stack.append((2 * i + 1, [*path, 1]))
        return "\n".join(lines)

    def _validate_value_at(self, index: int) -> None:
        if not 0 <= index < len(self.values):
            raise IndexError("Index out of bounds")
        if self._nodes[self.tree_indices[index]].tobytes().hex() != self.leaf_hash(self.values[index])[2:]:
            raise ValueError("Merkle tree does not contain the expected value")
