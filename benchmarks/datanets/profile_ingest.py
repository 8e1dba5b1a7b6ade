"""cProfile of the ingestion worker on a generated file (default 200k records), on PostgreSQL.

    .venv/bin/python benchmarks/datanets/profile_ingest.py [--records 200000] [--top 25]

Recreates the benchmark database (see bench_datanets.py), ingests in a child process under cProfile and prints the
top functions by own time and by cumulative time. The profile is kept in benchmarks/out/ingest-N.prof.
"""

from __future__ import annotations

import argparse
import os
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_datanets as bench  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", bench.DEFAULT_DB))
    args = parser.parse_args()
    bench.OUT.mkdir(parents=True, exist_ok=True)
    bench._recreate_database(args.database_url)
    bench._setup_django(args.database_url)
    from django.core.management import call_command

    from accounts.models import User
    from datanets import services

    call_command("migrate", verbosity=0)
    print(bench.machine_line())
    path = bench.generate(args.records)
    owner = User.objects.create_user("bench-owner", password="x" * 12)
    datanet = services.datanet_create(
        owner=owner, title="Profile", record_kind="labeled_text", labels=bench.LABELS, domain="bench"
    )
    prof = bench.OUT / f"ingest-{args.records}.prof"
    os.environ["BENCH_PROFILE"] = str(prof)
    run = bench.ingest(args, path=path, datanet=datanet, user=owner)
    print(
        f"{args.records:,} records: {run['wall']:.1f} s wall under cProfile ({args.records / run['wall']:,.0f} "
        f"records/s), worker CPU {run['cpu']:.1f} s, {bench.load()}"
    )
    print("timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in run["timings"].items()))
    stats = pstats.Stats(str(prof))
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
