"""An in-process EVM (eth-tester on py-evm) whose transactions are journaled, so its state survives restarts.

Every accepted raw transaction (and every explicitly mined empty block) is appended to a JSONL journal and
fsync'd before the call returns; a new instance replays the journal. Several processes may share one journal
(the web process and a worker): writes hold an exclusive ``flock`` and every request first catches up with what
the others appended, so they all see one chain.

The funded accounts are the well-known dev keys of the mnemonic below (the same as anvil's and Hardhat's). They are
public: for development and tests only, never for anything of value.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_tester import EthereumTester, PyEVMBackend
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider
from web3.types import RPCEndpoint, RPCResponse

DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_ACCOUNTS = 10
DEV_BALANCE_WEI = 10_000 * 10**18

Account.enable_unaudited_hdwallet_features()
DEV_KEYS: tuple[str, ...] = tuple(
    Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").key.to_0x_hex() for i in range(DEV_ACCOUNTS)
)


class JournalError(RuntimeError):
    """The journal holds a transaction that no longer applies: it was edited, or belongs to another chain."""


class JournaledTesterProvider(EthereumTesterProvider):
    def __init__(self, journal_path: Path | None = None) -> None:
        backend = PyEVMBackend.from_mnemonic(
            DEV_MNEMONIC,
            num_accounts=DEV_ACCOUNTS,
            genesis_state_overrides={"balance": DEV_BALANCE_WEI},
            hd_path="m/44'/60'/0'/0",
        )
        super().__init__(EthereumTester(backend))
        self.journal_path = Path(journal_path) if journal_path else None
        self._offset = 0
        # py-evm is not thread-safe, and Django serves requests from threads
        self._lock = threading.RLock()
        if self.journal_path:
            self.journal_path.parent.mkdir(parents=True, exist_ok=True)
            self.journal_path.touch(exist_ok=True)
            with self._lock, self._flock(fcntl.LOCK_SH) as journal:
                self._catch_up(journal)

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        with self._lock:
            if not self.journal_path:
                return super().make_request(method, params)
            writes = method in ("eth_sendRawTransaction", "evm_mine")
            with self._flock(fcntl.LOCK_EX if writes else fcntl.LOCK_SH) as journal:
                self._catch_up(journal)
                response = super().make_request(method, params)
                if writes and "error" not in response:
                    entry = {"raw": params[0]} if method == "eth_sendRawTransaction" else {"mine": int(params[0] or 1)}
                    self._append(journal, entry)
                return response

    def _flock(self, mode: int) -> _Flock:
        assert self.journal_path is not None
        return _Flock(self.journal_path, mode)

    def _append(self, journal: Any, entry: dict[str, Any]) -> None:
        journal.seek(0, os.SEEK_END)
        journal.write(json.dumps(entry, separators=(",", ":")) + "\n")
        journal.flush()
        os.fsync(journal.fileno())
        self._offset = journal.tell()

    def _catch_up(self, journal: Any) -> None:
        journal.seek(self._offset)
        for line in journal:
            if not line.endswith("\n"):
                break  # a write cut short by a crash: the sender still holds the raw tx and will resend it
            entry = json.loads(line)
            if "raw" in entry:
                try:
                    self.ethereum_tester.send_raw_transaction(entry["raw"])
                except Exception as exc:
                    raise JournalError(f"{self.journal_path}: cannot replay {line[:80]}...: {exc}") from exc
            else:
                self.ethereum_tester.mine_blocks(entry["mine"])
            self._offset += len(line.encode())


class _Flock:
    def __init__(self, path: Path, mode: int) -> None:
        self.path, self.mode = path, mode

    def __enter__(self) -> Any:
        self.file = open(self.path, "a+", encoding="utf-8")
        fcntl.flock(self.file.fileno(), self.mode)
        return self.file

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.file.fileno(), fcntl.LOCK_UN)
        self.file.close()


def embedded_web3(journal_path: Path | None = None) -> Web3:
    """A Web3 on a fresh in-process chain, replaying ``journal_path`` first when given."""
    return Web3(JournaledTesterProvider(journal_path))
