"""Start and stop anvil (from the npm package ``@foundry-rs/anvil``) on a free loopback port, for tests and CI."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

NODE_MODULES = Path(__file__).resolve().parent.parent / "contracts" / "node_modules"
ANVIL_CHAIN_ID = 31337


def find_anvil() -> Path | None:
    """``$ANVIL_BIN``, else the binary npm put in settlement/contracts/node_modules, else ``anvil`` on PATH."""
    if os.environ.get("ANVIL_BIN"):
        return Path(os.environ["ANVIL_BIN"])
    system = {"Linux": "linux", "Darwin": "darwin", "Windows": "win32"}.get(platform.system(), "")
    arch = {"x86_64": "amd64", "AMD64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "")
    packaged = NODE_MODULES / "@foundry-rs" / f"anvil-{system}-{arch}" / "bin" / "anvil"
    if packaged.is_file() and os.access(packaged, os.X_OK):
        return packaged
    found = shutil.which("anvil")
    return Path(found) if found else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class AnvilNode:
    url: str
    port: int
    process: subprocess.Popen[bytes]


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"anvil exited with code {process.returncode} before answering on {url}")
        try:
            requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.05)
    raise TimeoutError(f"anvil did not answer on {url} within {timeout} s")


@contextmanager
def anvil_node(
    *, port: int | None = None, state_path: Path | None = None, args: Sequence[str] = (), timeout: float = 20.0
) -> Iterator[AnvilNode]:
    """A running anvil bound to 127.0.0.1; with ``state_path`` its state is loaded on start and saved on stop,
    so a second ``anvil_node(state_path=...)`` is the same chain after a restart."""
    binary = find_anvil()
    if binary is None:
        raise FileNotFoundError("anvil not found: run `npm ci` in settlement/contracts (or set ANVIL_BIN)")
    port = port or free_port()
    command = [str(binary), "--host", "127.0.0.1", "--port", str(port), "--silent", *args]
    if state_path is not None:
        command += ["--state", str(state_path)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, timeout)
        yield AnvilNode(url=url, port=port, process=process)
    finally:
        # SIGTERM lets anvil write --state before it exits
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
