"""End-to-end settle of one epoch with N contributors: receipts -> close (accrual, allocations) -> tree, dump,
anchor, confirmed. On the embedded chain and on anvil (when installed). Own SQLite database in a temp folder.

    .venv/bin/python benchmarks/settlement/settle_bench.py [--contributors 100000] [--chains embedded,anvil]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.system()} {platform.release()} · {cpu} · {os.cpu_count()} CPUs · Python {platform.python_version()}"
    )


def run(chain: str, contributors: int, per_receipt: int) -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import hashlib

    from accounts.models import User
    from attribution.models import Receipt
    from core.canonical import canonical_json
    from models_factory.models import Inference
    from settlement import anchoring, epochs, rewards
    from settlement.chain import config as chain_config
    from settlement.tests.factories import model_version

    chain_config.forget_connections()
    t0 = time.perf_counter()
    users = User.objects.bulk_create(
        [
            User(username=f"c{i}", wallet_address="0x" + hashlib.sha256(str(i).encode()).hexdigest()[:40])
            for i in range(contributors)
        ],
        batch_size=5000,
    )
    version = model_version()
    consumer = User.objects.create(username="consumer")
    inferences, receipts = [], []
    for start in range(0, contributors, per_receipt):
        group = users[start : start + per_receipt]
        shares = [{"contributor": u.username, "share_ppm": 1_000_000 // len(group)} for u in group]
        shares[-1]["share_ppm"] += 1_000_000 - sum(s["share_ppm"] for s in shares)
        inference = Inference(
            version=version, consumer=consumer, input={}, input_hash=str(start), output={}, fee=100, latency_ms=1
        )
        body = {"inference": str(inference.pk), "shares": shares, "fee": 100}
        inferences.append(inference)
        receipts.append(
            Receipt(
                id=hashlib.sha256(canonical_json(body)).hexdigest(),
                inference=inference,
                version=version,
                method="bench",
                body=body,
                fee=100,
            )
        )
    Inference.objects.bulk_create(inferences, batch_size=2000)
    Receipt.objects.bulk_create(receipts, batch_size=2000)
    setup = time.perf_counter() - t0

    t1 = time.perf_counter()
    epoch = epochs.epoch_close(actor=None, number=rewards.epoch_open_get().number)
    closed = time.perf_counter() - t1
    web3 = chain_config.w3()
    chain_config.deployment(web3)
    t2 = time.perf_counter()
    settlement = anchoring.epoch_settle_start(actor=None, number=epoch.number)
    settlement = anchoring.settlement_run(settlement.pk, web3=web3, timeout=900, poll=0.05)
    settled = time.perf_counter() - t2
    assert settlement.state == "confirmed", (settlement.alarm, settlement.last_error)
    print(
        f"{chain:8s} contributors={contributors:,} receipts={len(receipts):,} leaves={settlement.leaf_count:,} "
        f"close={closed:.1f}s settle(tree+dump+anchor+confirm)={settled:.1f}s end-to-end={closed + settled:.1f}s "
        f"dump={settlement.dump_size / 1e6:.1f} MB anchor gas={settlement.gas_used} (setup {setup:.1f}s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contributors", type=int, default=100_000)
    parser.add_argument("--per-receipt", type=int, default=100)
    parser.add_argument("--chains", default="embedded,anvil")
    args = parser.parse_args()
    print(machine())
    for chain in args.chains.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["DATANETS_VAR_DIR"] = tmp
            os.environ["DATABASE_URL"] = f"sqlite:///{tmp}/bench.sqlite3"
            os.environ["DATANETS_BROKER_DIR"] = f"{tmp}/broker"
            os.environ["MEDIA_ROOT"] = f"{tmp}/media"
            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
            os.environ.setdefault("DATANETS_DEV", "1")  # a benchmark on this machine, not a server
            if chain == "anvil":
                from settlement.chain.anvil import anvil_node, find_anvil

                if find_anvil() is None:
                    print("anvil   skipped: not installed (npm ci in settlement/contracts)")
                    continue
                from settlement.chain import client
                from settlement.chain.embedded import DEV_KEYS

                names = ("CHAIN_RPC_URL", "CHAIN_ANCHOR_KEY", "CHAIN_RELAYER_KEY")
                names += ("CHAIN_DISTRIBUTOR_ADDRESS", "CHAIN_TOKEN_ADDRESS")
                with anvil_node() as node:
                    # A chain named by CHAIN_RPC_URL: the operator deploys and names the contracts and keys.
                    deployed = client.deploy_contracts(
                        client.connect(node.url),
                        DEV_KEYS[0],
                        anchorer=client.address_of(DEV_KEYS[1]),
                        fund_distributor=10**30,
                    )
                    values = (node.url, DEV_KEYS[1], DEV_KEYS[2], deployed.distributor, deployed.token)
                    os.environ.update(dict(zip(names, values)))
                    _in_django(chain, args)
                for name in names:
                    os.environ.pop(name)
            else:
                os.environ["CHAIN_JOURNAL_PATH"] = f"{tmp}/chain/journal.jsonl"
                _in_django(chain, args)


def _in_django(chain: str, args: argparse.Namespace) -> None:
    # settings are read once per process: each chain runs in its own interpreter
    import subprocess

    code = (
        f"import django,sys;sys.path.insert(0,{str(ROOT)!r});django.setup();"
        f"from benchmarks.settlement.settle_bench import run;run({chain!r},{args.contributors},{args.per_receipt})"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


if __name__ == "__main__":
    main()
