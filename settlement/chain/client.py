"""Talking to the settlement contracts: connect, deploy, build/sign/broadcast transactions, read state.

Low-level on purpose: the settlement state machine (Django side) stores each signed transaction before it calls
``broadcast`` and decides what to do on every outcome. Errors come out as three kinds: ``ChainRevert`` (the
contract said no, with a decoded reason), ``ChainUnavailable`` (the node did not answer: retry later) and
``NonceConflict`` (another transaction took the nonce).
"""

from __future__ import annotations

import ast
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import requests
from eth_abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_account import Account
from eth_utils import function_signature_to_4byte_selector
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import (
    ContractLogicError,
    ProviderConnectionError,
    TimeExhausted,
    TransactionNotFound,
    Web3RPCError,
)
from web3.logs import DISCARD

try:
    from eth_tester.exceptions import TransactionFailed
except ImportError:  # pragma: no cover - eth-tester is only needed for the embedded chain
    TransactionFailed = ContractLogicError  # type: ignore[misc,assignment]

ARTIFACTS_DIR = Path(__file__).resolve().parent.parent / "contracts" / "artifacts"
DEFAULT_PRIORITY_FEE_WEI = 1_000_000_000
REVOKED_ROOT = "0x" + "00" * 31 + "01"
T = TypeVar("T")


class ChainError(Exception):
    """Any failure talking to the chain."""


class ChainRevert(ChainError):
    """The EVM reverted; ``reason`` is the decoded custom error (``EpochOutOfOrder(expected=2, given=1)``)."""

    def __init__(self, reason: str, data: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.data = data

    @property
    def error_name(self) -> str:
        return self.reason.split("(", 1)[0]


class ChainUnavailable(ChainError):
    """The node did not answer (down, restarting, timing out). Safe to retry later."""


class NonceConflict(ChainError):
    """The nonce is already used by a different transaction than the one broadcast."""


@dataclass(frozen=True)
class Deployment:
    token: str
    distributor: str
    chain_id: int
    deployer: str
    block_number: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Deployment:
        return cls(**{k: data[k] for k in ("token", "distributor", "chain_id", "deployer", "block_number")})


# ---- connection and errors -----------------------------------------------------------------------------------


def connect(rpc_url: str | None = None, journal_path: Path | None = None, *, timeout: float = 10.0) -> Web3:
    """A JSON-RPC HTTP connection when ``rpc_url`` is given, else the embedded chain replayed from ``journal_path``."""
    if rpc_url:
        return Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
    from settlement.chain.embedded import embedded_web3

    return embedded_web3(journal_path)


@cache
def load_artifact(name: str) -> dict[str, Any]:
    path = ARTIFACTS_DIR / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing: run `npm ci && npm run build` in settlement/contracts") from None


@cache
def _error_selectors() -> dict[bytes, tuple[str, list[str], list[str]]]:
    selectors: dict[bytes, tuple[str, list[str], list[str]]] = {
        function_signature_to_4byte_selector("Error(string)"): ("Error", ["string"], ["message"]),
        function_signature_to_4byte_selector("Panic(uint256)"): ("Panic", ["uint256"], ["code"]),
    }
    for name in ("DatanetsToken", "RewardDistributor"):
        for item in load_artifact(name)["abi"]:
            if item["type"] == "error":
                types = [i["type"] for i in item["inputs"]]
                selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
                selectors[selector] = (item["name"], types, [i["name"] for i in item["inputs"]])
    return selectors


def decode_revert(data: bytes | str | None) -> str:
    """A readable reason from raw revert data: ``Name(arg=value, ...)``, or the data itself when unknown."""
    if data is None:
        return "reverted without data"
    raw = HexBytes(data) if not isinstance(data, str) or data.startswith("0x") else None
    if raw is None or len(raw) < 4:
        return str(data) or "reverted without data"
    known = _error_selectors().get(bytes(raw[:4]))
    if known is None:
        return f"unknown error 0x{raw.hex()}"
    name, types, names = known
    try:
        args = abi_decode(types, bytes(raw[4:]))
    except (DecodingError, ValueError):
        return f"{name}(<undecodable 0x{raw[4:].hex()}>)"
    if name == "Error":
        return str(args[0])
    shown = ", ".join(f"{n}={'0x' + a.hex() if isinstance(a, bytes) else a}" for n, a in zip(names, args, strict=True))
    return f"{name}({shown})"


def _revert_data(exc: BaseException) -> str | None:
    data = getattr(exc, "data", None)
    if isinstance(data, str) and data.startswith("0x"):
        return data
    for arg in getattr(exc, "args", ()):
        if isinstance(arg, bytes | bytearray):
            return "0x" + bytes(arg).hex()
        if isinstance(arg, str) and arg.startswith("0x"):
            return arg
        if isinstance(arg, str):
            # eth-tester hands custom errors over as the repr of their bytes: "execution reverted: b'~\\xd8...'"
            literal = arg.removeprefix("execution reverted: ")
            if literal[:2] in ("b'", 'b"'):
                with suppress(ValueError, SyntaxError):
                    raw = ast.literal_eval(literal)
                    if isinstance(raw, bytes):
                        return "0x" + raw.hex()
    return None


def _as_revert(exc: BaseException) -> ChainRevert:
    data = _revert_data(exc)
    if data is not None and data != "0x":
        return ChainRevert(decode_revert(data), data)
    message = getattr(exc, "message", None) or (exc.args[0] if exc.args else str(exc))
    return ChainRevert(str(message) or "reverted", data)


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn web3/eth-tester/transport exceptions into ``ChainRevert`` and ``ChainUnavailable``."""
    try:
        yield
    except (ContractLogicError, TransactionFailed) as exc:
        raise _as_revert(exc) from exc
    except (requests.ConnectionError, requests.Timeout, ProviderConnectionError, ConnectionError, TimeoutError) as exc:
        raise ChainUnavailable(f"the chain node did not answer: {exc}") from exc


def call(fn: Callable[[], T]) -> T:
    with translate_errors():
        return fn()


# ---- contracts -----------------------------------------------------------------------------------------------


def token_contract(w3: Web3, address: str) -> Contract:
    art = load_artifact("DatanetsToken")
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=art["abi"])


def distributor_contract(w3: Web3, address: str) -> Contract:
    art = load_artifact("RewardDistributor")
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=art["abi"])


def address_of(key: str) -> str:
    return Account.from_key(key).address


def fee_fields(w3: Web3, *, priority_fee: int | None = None) -> dict[str, int]:
    """EIP-1559 fees that stay valid through a doubling of the base fee."""
    with translate_errors():
        base_fee = int(w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
    tip = DEFAULT_PRIORITY_FEE_WEI if priority_fee is None else priority_fee
    return {"maxPriorityFeePerGas": tip, "maxFeePerGas": 2 * base_fee + tip}


def _transact_fields(w3: Web3, sender: str, nonce: int | None, gas: int | None) -> dict[str, Any]:
    with translate_errors():
        fields: dict[str, Any] = {
            "from": Web3.to_checksum_address(sender),
            "chainId": w3.eth.chain_id,
            "nonce": w3.eth.get_transaction_count(Web3.to_checksum_address(sender), "pending")
            if nonce is None
            else nonce,
            "type": 2,
        }
    fields.update(fee_fields(w3))
    if gas is not None:
        fields["gas"] = gas
    return fields


def _build(fn: Any, fields: dict[str, Any]) -> dict[str, Any]:
    with translate_errors():
        tx = dict(fn.build_transaction(fields))
    if "gas" not in fields:
        # estimates are exact for this call in this state; a margin covers a state that moves before it lands
        tx["gas"] = math.ceil(tx["gas"] * 1.2)
    return tx


def build_anchor_tx(
    w3: Web3,
    distributor: str,
    *,
    sender: str,
    epoch: int,
    root: str | bytes,
    data_hash: str | bytes,
    total_cumulative: int,
    nonce: int | None = None,
    gas: int | None = None,
) -> dict[str, Any]:
    """An unsigned ``anchor`` transaction. Estimating gas simulates it, so a replayed epoch raises ChainRevert here."""
    fn = distributor_contract(w3, distributor).functions.anchor(
        epoch, HexBytes(root), HexBytes(data_hash), total_cumulative
    )
    return _build(fn, _transact_fields(w3, sender, nonce, gas))


def build_claim_tx(
    w3: Web3,
    distributor: str,
    *,
    sender: str,
    account: str,
    epoch: int,
    cumulative_amount: int,
    proof: Sequence[str | bytes],
    nonce: int | None = None,
    gas: int | None = None,
) -> dict[str, Any]:
    fn = distributor_contract(w3, distributor).functions.claim(
        Web3.to_checksum_address(account), epoch, cumulative_amount, [HexBytes(p) for p in proof]
    )
    return _build(fn, _transact_fields(w3, sender, nonce, gas))


def build_revoke_tx(
    w3: Web3, distributor: str, *, sender: str, epoch: int, nonce: int | None = None, gas: int | None = None
) -> dict[str, Any]:
    fn = distributor_contract(w3, distributor).functions.revokeRoot(epoch)
    return _build(fn, _transact_fields(w3, sender, nonce, gas))


def sign(tx: dict[str, Any], key: str) -> tuple[bytes, str]:
    """Sign locally: the raw bytes to store before broadcasting, and the transaction hash they will have."""
    unsigned = {k: v for k, v in tx.items() if k != "from"}
    signed = Account.sign_transaction(unsigned, key)
    return bytes(signed.raw_transaction), signed.hash.to_0x_hex()


def bump_fees(tx: dict[str, Any], factor: float = 1.25) -> dict[str, Any]:
    """The same transaction (same nonce) with fees raised by ``factor``; nodes replace at +10% or more."""
    if factor < 1.1:
        raise ValueError("a replacement needs fees at least 10% higher")
    bumped = dict(tx)
    if "maxFeePerGas" in tx:
        bumped["maxFeePerGas"] = math.ceil(int(tx["maxFeePerGas"]) * factor)
        bumped["maxPriorityFeePerGas"] = math.ceil(int(tx["maxPriorityFeePerGas"]) * factor)
    else:
        bumped["gasPrice"] = math.ceil(int(tx["gasPrice"]) * factor)
    return bumped


def broadcast(w3: Web3, raw: bytes | str) -> str:
    """Send signed bytes; returns the hash. Sending the same bytes again (after a crash) also succeeds."""
    raw_bytes = HexBytes(raw)
    tx_hash = Web3.keccak(raw_bytes).to_0x_hex()
    try:
        with translate_errors():
            return w3.eth.send_raw_transaction(raw_bytes).to_0x_hex()
    except (ChainRevert, ChainUnavailable):
        raise
    except Exception as exc:
        message = str(exc).lower()
        if "already known" in message or "known transaction" in message or "already imported" in message:
            return tx_hash
        if "nonce" in message and any(word in message for word in ("too low", "expected", "already", "used")):
            if _transaction_known(w3, tx_hash):
                return tx_hash
            raise NonceConflict(f"nonce already used by another transaction ({exc})") from exc
        if isinstance(exc, Web3RPCError | ValueError):
            raise ChainError(str(exc)) from exc
        raise


def _transaction_known(w3: Web3, tx_hash: str) -> bool:
    try:
        with translate_errors():
            w3.eth.get_transaction(tx_hash)
        return True
    except TransactionNotFound:
        return False


def get_receipt(w3: Web3, tx_hash: str) -> dict[str, Any] | None:
    """The receipt, or None while the transaction is not mined (or unknown to the node)."""
    try:
        with translate_errors():
            return dict(w3.eth.get_transaction_receipt(tx_hash))
    except TransactionNotFound:
        return None


def wait_for_receipt(w3: Web3, tx_hash: str, *, timeout: float = 30.0, poll: float = 0.05) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        receipt = get_receipt(w3, tx_hash)
        if receipt is not None:
            return receipt
        if time.monotonic() > deadline:
            raise TimeExhausted(f"no receipt for {tx_hash} after {timeout} s")
        time.sleep(poll)


def confirmations(w3: Web3, receipt: dict[str, Any]) -> int:
    with translate_errors():
        return max(0, w3.eth.block_number - int(receipt["blockNumber"]) + 1)


def revert_reason(w3: Web3, tx_hash: str) -> str:
    """Why a mined transaction failed: replays it as a call on the state of its block."""
    with translate_errors():
        tx = w3.eth.get_transaction(tx_hash)
        receipt = w3.eth.get_transaction_receipt(tx_hash)
    call_fields = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "value": tx.get("value", 0)}
    try:
        with translate_errors():
            w3.eth.call(call_fields, receipt["blockNumber"] - 1)  # type: ignore[arg-type]
    except ChainRevert as exc:
        return exc.reason
    return "reverted (no reason when replayed)"


def send_and_wait(w3: Web3, tx: dict[str, Any], key: str, *, timeout: float = 30.0) -> dict[str, Any]:
    """Sign, broadcast and wait; a mined failure raises ChainRevert with the decoded reason."""
    raw, tx_hash = sign(tx, key)
    broadcast(w3, raw)
    receipt = wait_for_receipt(w3, tx_hash, timeout=timeout)
    if receipt["status"] != 1:
        raise ChainRevert(revert_reason(w3, tx_hash))
    return receipt


# ---- reads ---------------------------------------------------------------------------------------------------


def onchain_root(w3: Web3, distributor: str, epoch: int) -> str | None:
    """The root anchored for ``epoch`` as 0x hex, None when that epoch is not anchored, ``REVOKED_ROOT`` once
    revoked (the contract overwrites a revoked root; the original stays in its Anchored event)."""
    root = call(lambda: distributor_contract(w3, distributor).functions.roots(epoch).call())
    return None if int.from_bytes(root, "big") == 0 else "0x" + bytes(root).hex()


def last_epoch(w3: Web3, distributor: str) -> int:
    return int(call(lambda: distributor_contract(w3, distributor).functions.lastEpoch().call()))


def is_revoked(w3: Web3, distributor: str, epoch: int) -> bool:
    return bool(call(lambda: distributor_contract(w3, distributor).functions.revoked(epoch).call()))


def claimed(w3: Web3, distributor: str, account: str) -> int:
    acct = Web3.to_checksum_address(account)
    return int(call(lambda: distributor_contract(w3, distributor).functions.claimed(acct).call()))


def token_balance(w3: Web3, token: str, account: str) -> int:
    acct = Web3.to_checksum_address(account)
    return int(call(lambda: token_contract(w3, token).functions.balanceOf(acct).call()))


def anchored_event(w3: Web3, distributor: str, receipt: dict[str, Any]) -> dict[str, Any] | None:
    """The ``Anchored`` event in a receipt, decoded (epoch, root, dataHash, totalCumulative)."""
    events = distributor_contract(w3, distributor).events.Anchored().process_receipt(receipt, errors=DISCARD)
    if not events:
        return None
    args = dict(events[0]["args"])
    return {k: ("0x" + v.hex() if isinstance(v, bytes) else v) for k, v in args.items()}


# ---- writes --------------------------------------------------------------------------------------------------


def deploy_contracts(
    w3: Web3,
    deployer_key: str,
    *,
    anchorer: str | None = None,
    admin: str | None = None,
    fund_distributor: int = 0,
) -> Deployment:
    """Deploy the dev token and the distributor; the deployer holds the admin, minter and anchor roles unless
    ``admin``/``anchorer`` say otherwise, and ``fund_distributor`` base units are minted to the distributor."""
    deployer = address_of(deployer_key)
    admin = Web3.to_checksum_address(admin or deployer)
    anchorer = Web3.to_checksum_address(anchorer or deployer)
    token_art = load_artifact("DatanetsToken")
    dist_art = load_artifact("RewardDistributor")
    token_factory = w3.eth.contract(abi=token_art["abi"], bytecode=token_art["bytecode"])
    token_receipt = send_and_wait(
        w3, _build(token_factory.constructor(deployer), _transact_fields(w3, deployer, None, None)), deployer_key
    )
    token = token_receipt["contractAddress"]
    dist_factory = w3.eth.contract(abi=dist_art["abi"], bytecode=dist_art["bytecode"])
    dist_receipt = send_and_wait(
        w3,
        _build(dist_factory.constructor(token, admin, anchorer), _transact_fields(w3, deployer, None, None)),
        deployer_key,
    )
    distributor = dist_receipt["contractAddress"]
    if fund_distributor:
        mint(w3, token, deployer_key, to=distributor, amount=fund_distributor)
    with translate_errors():
        chain_id = w3.eth.chain_id
    return Deployment(
        token=token,
        distributor=distributor,
        chain_id=chain_id,
        deployer=deployer,
        block_number=int(dist_receipt["blockNumber"]),
    )


def mint(w3: Web3, token: str, minter_key: str, *, to: str, amount: int) -> dict[str, Any]:
    fn = token_contract(w3, token).functions.mint(Web3.to_checksum_address(to), amount)
    return send_and_wait(w3, _build(fn, _transact_fields(w3, address_of(minter_key), None, None)), minter_key)


def anchor(
    w3: Web3,
    distributor: str,
    key: str,
    *,
    epoch: int,
    root: str | bytes,
    data_hash: str | bytes,
    total_cumulative: int,
) -> dict[str, Any]:
    """Anchor in one go (sign, send, wait): for tests and tools; the settlement run uses the steps itself."""
    tx = build_anchor_tx(
        w3,
        distributor,
        sender=address_of(key),
        epoch=epoch,
        root=root,
        data_hash=data_hash,
        total_cumulative=total_cumulative,
    )
    return send_and_wait(w3, tx, key)


def claim(
    w3: Web3,
    distributor: str,
    key: str,
    *,
    account: str,
    epoch: int,
    cumulative_amount: int,
    proof: Sequence[str | bytes],
) -> dict[str, Any]:
    """Claim for ``account`` (sent and paid for by ``key``'s address, paid out to ``account``)."""
    tx = build_claim_tx(
        w3,
        distributor,
        sender=address_of(key),
        account=account,
        epoch=epoch,
        cumulative_amount=cumulative_amount,
        proof=proof,
    )
    return send_and_wait(w3, tx, key)


def revoke_root(w3: Web3, distributor: str, key: str, *, epoch: int) -> dict[str, Any]:
    return send_and_wait(w3, build_revoke_tx(w3, distributor, sender=address_of(key), epoch=epoch), key)
