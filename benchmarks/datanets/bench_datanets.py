"""Datanets on PostgreSQL at scale: ingestion, near-duplicate detection, the review queue and snapshot publish.

    .venv/bin/python benchmarks/datanets/bench_datanets.py [--records 1000000] [--quick]

Needs PostgreSQL (default ``postgres://postgres@127.0.0.1:5432/datanets_bench``; ``--database-url`` to change).
The benchmark database is dropped and recreated on every run; the names ``datanets`` and ``test_datanets`` are
refused. Generated files go to benchmarks/out/ (gitignored) and are reused by later runs.

Every figure stands beside a reference measured in the same run:
- ingestion (records/s end to end, ``ingestion.contribution_ingest`` in a child process playing the worker, and
  its peak RSS) beside a bare COPY of the same number of pre-hashed, pre-formatted rows into a plain table;
- near-duplicate detection (signatures + LSH band keys + candidate lookup and check, timed inside the worker)
  beside ``datasketch.MinHashLSH`` on a subsample; the worker's and the PostgreSQL backend's CPU seconds beside
  the wall time (on a shared machine wall time mostly measures the others' load);
- the signature step alone: ours (numpy) beside Rensa (Rust) and datasketch on the same texts, and recall and
  precision of each against exact Jaccard on a labelled sample (``--ingest-only`` stops after these);
- review queue page (HTML and API, server time through Django's test Client, p50/p95) beside the bare SQL of the
  queue query, with EXPLAIN ANALYZE;
- snapshot publish (seconds) beside the bare ``SELECT`` of the approved rows it reads.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "benchmarks" / "out"
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/datanets_bench"
LABELS = ["positive", "negative", "neutral", "question"]
SEED = 7


# --- Set-up ---------------------------------------------------------------------------------------------------


def _db_name(url: str) -> str:
    return url.rsplit("/", 1)[-1].split("?", 1)[0]


def _setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DATANETS_VAR_DIR", str(OUT / "datanets-var"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DATANETS_DEV", "1")  # a benchmark on this machine, not a server
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def _recreate_database(database_url: str) -> None:
    import psycopg

    name = _db_name(database_url)
    if name in {"datanets", "test_datanets", "postgres"}:
        raise SystemExit(f"Refusing to drop the database {name!r}: point --database-url at a benchmark database.")
    admin = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return 0.0


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def machine_line() -> str:
    import django
    import numpy
    import psycopg
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0]
    return (
        f"{platform.platform()} | {cpu_model()} | {os.cpu_count()} cores | {ram_gib():.1f} GiB RAM | {load()}\n"
        f"Python {platform.python_version()}, Django {django.get_version()}, PostgreSQL {pg}, "
        f"psycopg {psycopg.__version__}, numpy {numpy.__version__}"
    )


# --- Data -----------------------------------------------------------------------------------------------------


def _vocabulary(rng: random.Random, size: int = 30_000) -> list[str]:
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ai", "ou", "ee")]
    words = set()
    while len(words) < size:
        words.add("".join(rng.choice(syllables) for _ in range(rng.choice((1, 2, 2, 3, 3, 4)))))
    return sorted(words)


def generate(n: int) -> Path:
    """``records-N.jsonl``: labeled_text records, Zipf-distributed words (30k vocabulary), 15-65 words each, with
    2% exact copies and 2% near copies (one or two words changed) of earlier records. Also ``records-N.copy``, the
    same rows pre-hashed and formatted for COPY, for the reference."""
    from core.canonical import canonical_json

    path = OUT / f"records-{n}.jsonl"
    copy_path = OUT / f"records-{n}.copy"
    if path.exists() and copy_path.exists():
        return path
    rng = random.Random(SEED)
    vocab = _vocabulary(rng)
    cum: list[float] = []
    total = 0.0
    for rank in range(1, len(vocab) + 1):
        total += 1.0 / rank**1.05
        cum.append(total)
    recent: list[tuple[list[str], str]] = []
    t0 = time.perf_counter()
    with open(path, "w", encoding="utf-8") as out, open(copy_path, "w", encoding="utf-8") as copy_out:
        for i in range(n):
            roll = rng.random()
            if recent and roll < 0.02:
                words, label = rng.choice(recent)
            elif recent and roll < 0.04:
                words, label = rng.choice(recent)
                words = list(words)
                for _ in range(1 + (len(words) > 40)):
                    words[rng.randrange(len(words))] = rng.choices(vocab, cum_weights=cum)[0]
            else:
                words = rng.choices(vocab, cum_weights=cum, k=rng.randint(15, 65))
                label = rng.choice(LABELS)
                if len(recent) < 5000:
                    recent.append((words, label))
                else:
                    recent[rng.randrange(5000)] = (words, label)
            words = list(words)
            for k in range(0, len(words), rng.randint(8, 16)):  # sentences
                words[k] = words[k].capitalize()
            text = " ".join(words).replace(" ", ". ", 1 + i % 3) + "."
            record = {"text": text, "label": label}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            data = canonical_json(record)
            digest = hashlib.sha256(data).hexdigest()
            escaped = data.decode().replace("\\", "\\\\")
            copy_out.write(f"{i + 1}\t{escaped}\t{digest}\t{label}\n")
    size = path.stat().st_size
    print(f"  generated {path.name}: {n:,} records, {size / 1e6:.0f} MB in {time.perf_counter() - t0:.0f} s")
    return path


# --- Ingestion ------------------------------------------------------------------------------------------------


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of a local process (the PostgreSQL backend serving this connection)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _child_ingest(job_id: str) -> None:
    """Runs in the child process: plays the worker, times the near-duplicate steps and the inserts."""
    from core import bulk
    from datanets.ingest import neardup
    from datanets.services import duplicates, ingestion

    timings: dict[str, float] = {"signatures": 0.0, "band_keys": 0.0, "candidates": 0.0}

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                timings[name] = timings.get(name, 0.0) + time.perf_counter() - t

        return wrapper

    neardup.MinHasher.signatures = timed("signatures", neardup.MinHasher.signatures)  # type: ignore[method-assign]
    duplicates.band_keys = timed("band_keys", duplicates.band_keys)
    ingestion.near_duplicates_mark = timed("candidates", ingestion.near_duplicates_mark)
    original_insert = bulk.bulk_insert

    def insert(model: Any, *args: Any, **kwargs: Any) -> Any:
        return timed(f"insert {model.__name__}", original_insert)(model, *args, **kwargs)

    ingestion.bulk_insert = insert
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    db_cpu0 = _process_cpu(backend)
    profile = os.environ.get("BENCH_PROFILE")
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    if profile:
        import cProfile

        cProfile.runctx("ingestion.contribution_ingest(job_id=job_id)", globals(), locals(), profile)
    else:
        ingestion.contribution_ingest(job_id=job_id)
    wall = time.perf_counter() - t0
    result = {
        "wall": wall,
        "cpu": time.process_time() - cpu0,
        # The database backend's CPU for this connection (same machine): with the worker's CPU it is what the
        # ingestion costs whatever else runs, which wall time on a shared 2-core box is not.
        "db_cpu": _process_cpu(backend) - db_cpu0,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "timings": timings,
    }
    print("RESULT " + json.dumps(result))


def ingest(args: argparse.Namespace, *, path: Path, datanet: Any, user: Any) -> dict[str, Any]:
    from core.models import Job
    from datanets.models import Contribution
    from datanets.services import uploads

    uploads.job_enqueue = lambda job: None  # the child below is the worker
    result = uploads.contribution_from_path(user=user, datanet=datanet, path=path, filename=path.name)
    job_id = str(result.contribution.job_id)
    env = {**os.environ, "DATABASE_URL": args.database_url}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--database-url", args.database_url, "--child-ingest", job_id],
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"the ingest child failed:\n{proc.stdout}\n{proc.stderr}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    child = json.loads(line[len("RESULT ") :])
    job = Job.objects.get(pk=job_id)
    contribution = Contribution.objects.get(pk=result.contribution.pk)
    if job.status != Job.Status.SUCCEEDED:
        raise SystemExit(f"ingestion did not succeed: {job.status} {job.error}")
    return {
        "wall_process": wall,
        "children_maxrss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "contribution": contribution,
        **child,
    }


def reference_copy(n: int) -> float:
    """Seconds for a bare COPY of n pre-hashed, pre-formatted rows into a plain table (no index)."""
    from django.db import connection

    copy_path = OUT / f"records-{n}.copy"
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_plain")
        cursor.execute("CREATE TABLE bench_plain (line_no bigint, data jsonb, content_hash varchar(64), label text)")
        t0 = time.perf_counter()
        with open(copy_path, "rb") as fh, cursor.cursor.copy("COPY bench_plain FROM STDIN") as copy:
            while block := fh.read(1 << 20):
                copy.write(block)
        seconds = time.perf_counter() - t0
        cursor.execute("SELECT count(*) FROM bench_plain")
        assert cursor.fetchone()[0] == n
        cursor.execute("DROP TABLE bench_plain")
    return seconds


def reference_datasketch(path: Path, n: int, threshold: float) -> float:
    """Records/s of datasketch MinHash (update_batch) + MinHashLSH query-then-insert on the first n records."""
    from datasketch import MinHash, MinHashLSH

    from datanets.ingest.neardup import RECALL_WEIGHTS, word_shingles

    texts = []
    with open(path, encoding="utf-8") as fh:
        for _, line in zip(range(n), fh):
            texts.append(json.loads(line)["text"])
    lsh = MinHashLSH(threshold=threshold, num_perm=128, weights=RECALL_WEIGHTS)
    t0 = time.perf_counter()
    for i, text in enumerate(texts):
        m = MinHash(num_perm=128)
        m.update_batch([" ".join(s).encode("utf-8") for s in word_shingles(text)])
        if not lsh.query(m):
            lsh.insert(i, m)
    return n / (time.perf_counter() - t0)


def _texts(path: Path, n: int) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line)["text"] for _, line in zip(range(n), fh)]


def minhash_libraries(path: Path, n: int) -> dict[str, float]:
    """Records/s of the signature step alone, on the same n texts: ours (numpy), Rensa (Rust) on our shingle
    hashes and on shingle strings, datasketch (update_batch)."""
    import numpy as np
    import rensa
    from datasketch import MinHash

    from datanets.ingest.neardup import MinHasher, word_shingles

    texts = _texts(path, n)
    hasher = MinHasher(num_perm=128)
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    for start in range(0, n, 5000):
        hasher.signatures(texts[start : start + 5000])
    out["ours (numpy), from text"] = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for start in range(0, n, 5000):
        hashes, offsets = hasher.shingle_hashes(texts[start : start + 5000])
        bounds = np.append(offsets, len(hashes)).astype(np.uint64)
        matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(hashes, bounds, 128, 1)
        np.asarray(matrix.to_rows(), dtype=np.uint32)
    out["Rensa on our shingle hashes, from text"] = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    tokens = [[" ".join(s) for s in word_shingles(t)] for t in texts]
    shingling = time.perf_counter() - t0
    t0 = time.perf_counter()
    for start in range(0, n, 5000):
        rows = rensa.RMinHash.digest_matrix_from_token_sets(tokens[start : start + 5000], 128, 1).to_rows()
        np.asarray(rows, dtype=np.uint32)
    out["Rensa on shingle strings (+ Python shingling)"] = n / (time.perf_counter() - t0 + shingling)
    m = min(n, 20_000)
    t0 = time.perf_counter()
    for shingles in tokens[:m]:
        h = MinHash(num_perm=128)
        h.update_batch([s.encode("utf-8") for s in shingles])
    out["datasketch update_batch (+ Python shingling)"] = m / (time.perf_counter() - t0 + shingling * m / n)
    return out


def near_dup_accuracy(path: Path, n_base: int, threshold: float) -> list[tuple[str, float, float, int, int]]:
    """Recall and precision against exact 3-shingle Jaccard on a labelled sample: n_base texts from the file and
    one variant of each with 0-8 words replaced; a pair is a near duplicate when its exact Jaccard >= threshold.
    Every predicted pair (a variant against any base) is checked exactly, so false positives across texts count.
    Rows: (method, recall, precision, positives, predicted)."""
    import numpy as np
    import rensa
    from datasketch import MinHash, MinHashLSH

    from datanets.ingest.neardup import (
        RECALL_WEIGHTS,
        BandIndex,
        MinHasher,
        NearDupIndex,
        band_keys,
        exact_jaccard,
        lsh_params,
        word_shingles,
    )

    rng = random.Random(SEED + 1)
    bases = _texts(path, n_base)
    vocab = sorted({w for t in bases[:2000] for w in t.split()})
    variants = []
    for text in bases:
        words = text.split()
        for _ in range(rng.choice((0, 1, 1, 1, 2, 2, 3, 5, 8))):
            words[rng.randrange(len(words))] = rng.choice(vocab)
        variants.append(" ".join(words))
    truth = {(i, i) for i in range(n_base) if exact_jaccard(bases[i], variants[i]) >= threshold}
    bands, rows = lsh_params(threshold, 128, *RECALL_WEIGHTS)

    def score(predicted: set[tuple[int, int]]) -> tuple[float, float, int, int]:
        correct = {(v, b) for v, b in predicted if (v, b) in truth or exact_jaccard(variants[v], bases[b]) >= threshold}
        positives = truth | correct  # a cross pair that really is >= threshold is a positive too
        return (
            len(correct & positives) / max(len(positives), 1),
            len(correct) / max(len(predicted), 1),
            len(positives),
            len(predicted),
        )

    def lsh_predict(base_sigs: np.ndarray, variant_sigs: np.ndarray, fingerprinted: bool) -> set[tuple[int, int]]:
        predicted: set[tuple[int, int]] = set()
        if fingerprinted:
            index = BandIndex(bands, rows)
            index.add(np.arange(n_base), band_keys(base_sigs, bands, rows))
            for v, found in enumerate(index.query(band_keys(variant_sigs, bands, rows))):
                for b in found:
                    if np.count_nonzero(variant_sigs[v] == base_sigs[b]) / 128 >= threshold:
                        predicted.add((v, b))
            return predicted
        exact_keys = NearDupIndex(threshold=threshold, num_perm=128)
        exact_keys.add_many(enumerate(base_sigs))
        for v in range(n_base):
            predicted.update((v, b) for b, _ in exact_keys.query(variant_sigs[v]))
        return predicted

    hasher = MinHasher(num_perm=128)
    ours_b, ours_v = hasher.signatures(bases), hasher.signatures(variants)
    out = [
        ("ours: numpy signatures, band index (this change)", *score(lsh_predict(ours_b, ours_v, True))),
        ("ours before: numpy signatures, exact band keys", *score(lsh_predict(ours_b, ours_v, False))),
    ]

    def rensa_sigs(texts: list[str]) -> np.ndarray:
        hashes, offsets = hasher.shingle_hashes(texts)
        bounds = np.append(offsets, len(hashes)).astype(np.uint64)
        matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(hashes, bounds, 128, 1)
        return np.asarray(matrix.to_rows(), dtype=np.uint32)

    out.append(("Rensa signatures, band index", *score(lsh_predict(rensa_sigs(bases), rensa_sigs(variants), True))))
    lsh = MinHashLSH(threshold=threshold, num_perm=128, weights=RECALL_WEIGHTS)
    sketches = []
    for i, text in enumerate(bases):
        h = MinHash(num_perm=128)
        h.update_batch([" ".join(s).encode("utf-8") for s in word_shingles(text)])
        lsh.insert(i, h)
        sketches.append(h)
    predicted = set()
    for v, text in enumerate(variants):
        h = MinHash(num_perm=128)
        h.update_batch([" ".join(s).encode("utf-8") for s in word_shingles(text)])
        predicted.update((v, b) for b in lsh.query(h) if h.jaccard(sketches[b]) >= threshold)
    out.append(("datasketch MinHash + MinHashLSH", *score(predicted)))
    return out


# --- Review queue and publish ---------------------------------------------------------------------------------

READING_CONTRIBUTORS = 10


def seed_reading(n: int) -> dict[str, Any]:
    """Two Datanets of n records each, written in SQL (no ingestion): ``Bench queue n`` with every record pending
    (the curator has voted on every 10th, so the queue skips those), and ``Bench publish n`` with every record
    approved. Records: labeled_text, about 250 characters, from 10 contributors in 10 contributions. Kept between
    runs: a database that already holds them is reused as it is (``--reading-only``)."""
    from django.db import connection, transaction

    from accounts.models import User
    from datanets import services
    from datanets.models import Contribution, Datanet, Record, Snapshot

    owner, _ = User.objects.get_or_create(username="bench-owner")
    curator, _ = User.objects.get_or_create(username="bench-curator")
    people = [User.objects.get_or_create(username=f"bench-c{i}")[0] for i in range(READING_CONTRIBUTORS)]
    out: dict[str, Any] = {"owner": owner, "curator": curator}
    for role, status in (("queue", Record.Status.PENDING), ("publish", Record.Status.APPROVED)):
        title = f"Bench {role} {n}"
        datanet = Datanet.objects.filter(title=title).first()
        if datanet is not None and Record.objects.filter(datanet=datanet).count() == n:
            out[role] = datanet
            continue
        t0 = time.perf_counter()
        with transaction.atomic():
            if datanet is not None:
                Snapshot.objects.filter(datanet=datanet).delete()
                Record.objects.filter(datanet=datanet).delete()
                Contribution.objects.filter(datanet=datanet).delete()
                datanet.delete()
            datanet = services.datanet_create(
                owner=owner, title=title, record_kind="labeled_text", labels=LABELS, curators=[curator], domain="b"
            )
            contributions = [
                Contribution.objects.create(
                    datanet=datanet,
                    contributor=person,
                    source=Contribution.Source.FILE,
                    filename=f"part-{i}.jsonl",
                    file_sha256=hashlib.sha256(f"{title}-{i}".encode()).hexdigest(),
                    blob_name=f"bench/{i}",
                    size_bytes=0,
                    status=Contribution.Status.DONE,
                )
                for i, person in enumerate(people)
            ]
            with connection.cursor() as cursor:
                cursor.execute(
                    """
                    INSERT INTO datanets_record (datanet_id, contribution_id, contributor_id, line_no, data,
                        content_hash, label, status, approvals, rejections, created_at)
                    SELECT %(datanet)s, (%(contributions)s::bigint[])[1 + g %% %(k)s],
                        (%(people)s::bigint[])[1 + g %% %(k)s], g / %(k)s + 1,
                        jsonb_build_object('text', 'record ' || g || ' ' || repeat(md5(g::text) || ' ', 7),
                                           'label', (%(labels)s::text[])[1 + (g / 7) %% 4]),
                        encode(sha256(('bench' || g)::bytea), 'hex'), (%(labels)s::text[])[1 + (g / 7) %% 4],
                        %(status)s, %(approvals)s, 0, now()
                    FROM generate_series(0, %(n)s - 1) AS g
                    """,
                    {
                        "datanet": datanet.pk,
                        "contributions": [c.pk for c in contributions],
                        "people": [p.pk for p in people],
                        "k": READING_CONTRIBUTORS,
                        "labels": LABELS,
                        "status": status,
                        "approvals": 2 if status == Record.Status.APPROVED else 0,
                        "n": n,
                    },
                )
                if status == Record.Status.PENDING:
                    cursor.execute(
                        """
                        INSERT INTO datanets_vote (record_id, curator_id, decision, reason, created_at)
                        SELECT id, %s, 'approve', '', now() FROM datanets_record
                        WHERE datanet_id = %s AND id %% 10 = 0
                        """,
                        [curator.pk, datanet.pk],
                    )
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE datanets_record")
            cursor.execute("VACUUM ANALYZE datanets_vote")
        print(f"  seeded {title}: {n:,} records in {time.perf_counter() - t0:.0f} s", flush=True)
        out[role] = datanet
    return out


def percentiles(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    p95 = samples[min(len(samples) - 1, int(round(0.95 * (len(samples) - 1))))]
    return statistics.median(samples), p95


def review_queue_bench(
    datanet: Any, curator: Any, requests: int, contributor_filter: str = ""
) -> list[tuple[str, float, float, float, float]]:
    from django.db import connection
    from django.test import Client

    from datanets import selectors
    from datanets.models import Record

    client = Client()
    client.force_login(curator)
    pending = Record.objects.filter(datanet=datanet, status=Record.Status.PENDING).order_by("id")
    count = pending.count()
    deep_after = pending.values_list("id", flat=True)[int(count * 0.9)]
    rows = []
    cases = [
        ("HTML page, first", f"/d/{datanet.slug}/review/", {}),
        ("HTML page, deep (after= at 90%)", f"/d/{datanet.slug}/review/", {"after": deep_after}),
        ("HTML page, label filter, first", f"/d/{datanet.slug}/review/", {"label": "question"}),
        ("HTML page, label filter, deep", f"/d/{datanet.slug}/review/", {"after": deep_after, "label": "question"}),
        ("API, first", f"/api/datanets/{datanet.slug}/review-queue/", {}),
        ("API, deep (after= at 90%)", f"/api/datanets/{datanet.slug}/review-queue/", {"after": deep_after}),
        (
            "API, label filter, deep",
            f"/api/datanets/{datanet.slug}/review-queue/",
            {"after": deep_after, "label": "question"},
        ),
    ]
    if contributor_filter:
        cases += [
            (
                "HTML page, contributor filter, deep",
                f"/d/{datanet.slug}/review/",
                {"after": deep_after, "contributor": contributor_filter},
            ),
            (
                "API, contributor filter, deep",
                f"/api/datanets/{datanet.slug}/review-queue/",
                {"after": deep_after, "contributor": contributor_filter},
            ),
        ]
    cpu: dict[str, tuple[float, float]] = {}
    for name, url, params in cases:
        times, page_cpu = [], []
        for _ in range(requests):
            t0, c0 = time.perf_counter(), time.process_time()
            response = client.get(url, params)
            times.append((time.perf_counter() - t0) * 1000)
            page_cpu.append((time.process_time() - c0) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        # The bare queue query, as the reference floor of the page.
        sql_times, sql_cpu = [], []
        for _ in range(requests):
            t0, c0 = time.perf_counter(), time.process_time()
            selectors.review_queue(
                datanet=datanet,
                curator=curator,
                after_id=int(params.get("after", 0)),
                label=params.get("label", ""),
                contributor=params.get("contributor", ""),
            )
            sql_times.append((time.perf_counter() - t0) * 1000)
            sql_cpu.append((time.process_time() - c0) * 1000)
        cpu[name] = (statistics.median(page_cpu), statistics.median(sql_cpu))
        p50, p95 = percentiles(times)
        q50, q95 = percentiles(sql_times)
        rows.append((name, p50, p95, q50, q95))
    from datanets.models import Vote

    qs_plans = {}
    for name, after in (("first page", 0), ("deep page", deep_after)):
        qs = Record.objects.filter(datanet=datanet, status=Record.Status.PENDING, id__gt=after).exclude(
            contributor=curator
        )
        from django.db.models import Exists, OuterRef

        qs = qs.filter(~Exists(Vote.objects.filter(record=OuterRef("pk"), curator=curator)))
        sql, params_ = qs.select_related("contributor").order_by("id")[:50].query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params_)
            qs_plans[name] = "\n".join(r[0] for r in cursor.fetchall())
    review_queue_bench.plans = qs_plans  # type: ignore[attr-defined]
    review_queue_bench.cpu = cpu  # type: ignore[attr-defined]
    return rows


def publish_bench(datanet: Any, owner: Any) -> dict[str, float]:
    from django.db import connection

    from datanets import services
    from datanets.models import Record

    t0 = time.perf_counter()
    approved = Record.objects.filter(datanet=datanet, status=Record.Status.PENDING).update(
        status=Record.Status.APPROVED, approvals=2
    )
    update_s = time.perf_counter() - t0
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE datanets_record")
    t0 = time.perf_counter()
    rows = list(
        Record.objects.filter(datanet=datanet, status=Record.Status.APPROVED)
        .order_by("content_hash")
        .values_list("id", "content_hash", "contributor__username", "label")
    )
    select_s = time.perf_counter() - t0
    del rows
    t0 = time.perf_counter()
    snapshot = services.snapshot_publish(actor=owner, datanet=datanet, notes="benchmark")
    publish_s = time.perf_counter() - t0
    assert snapshot.record_count == approved
    return {"approved": approved, "update_s": update_s, "select_s": select_s, "publish_s": publish_s}


def publish_reading_bench(datanet: Any, owner: Any) -> dict[str, float]:
    """Publish a Datanet whose records are all approved (earlier benchmark snapshots are deleted first), beside the
    bare SELECT of the approved rows; then build its JSONL export in this process, with its progress updates and
    the peak traced Python memory of the export."""
    import tracemalloc

    from django.db import connection

    from core.models import Job
    from datanets import services
    from datanets.models import Record, Snapshot, SnapshotExport
    from datanets.services import snapshots as snapshot_services

    Snapshot.objects.filter(datanet=datanet).delete()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE datanets_snapshotrecord")
    t0 = time.perf_counter()
    rows = list(
        Record.objects.filter(datanet=datanet, status=Record.Status.APPROVED)
        .order_by("content_hash")
        .values_list("id", "content_hash", "contributor__username", "label")
    )
    select_s = time.perf_counter() - t0
    approved = len(rows)
    del rows
    t0 = time.perf_counter()
    snapshot = services.snapshot_publish(actor=owner, datanet=datanet, notes="benchmark")
    publish_s = time.perf_counter() - t0
    assert snapshot.record_count == approved

    snapshot_services.job_enqueue = lambda job: None  # this process is the worker
    export = services.snapshot_export_request(actor=owner, snapshot=snapshot, fmt="jsonl")
    updates: list[tuple[float, int]] = []
    original_update = snapshot_services.JobProgress.update

    def watch(self: Any, done: int, *args: Any, **kwargs: Any) -> Any:
        updates.append((time.perf_counter(), done))
        return original_update(self, done, *args, **kwargs)

    snapshot_services.JobProgress.update = watch  # type: ignore[method-assign]
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        services.snapshot_export_run(job_id=str(export.job_id))
    finally:
        snapshot_services.JobProgress.update = original_update  # type: ignore[method-assign]
    export_s = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    export.refresh_from_db()
    assert Job.objects.get(pk=export.job_id).status == Job.Status.SUCCEEDED and export.ready
    first_progress = (updates[0][0] - t0) if updates else float("nan")
    return {
        "approved": approved,
        "select_s": select_s,
        "publish_s": publish_s,
        "export_s": export_s,
        "export_mb": export.size_bytes / 1e6,
        "export_peak_mb": peak / 1e6,
        "progress_updates": len(updates),
        "first_progress_s": first_progress,
        "exports": SnapshotExport.objects.filter(snapshot=snapshot).count(),
    }


def reading_main(args: argparse.Namespace) -> None:
    """The reading parts alone on a kept benchmark database: seed (once), review queue, publish, export."""
    _setup_django(args.database_url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    print("Datanets reading benchmark on PostgreSQL (database kept between runs)")
    print(machine_line())
    print(f"\nSeeding ({load()})")
    seeded = seed_reading(args.records)
    print(f"\nReview queue with {args.records:,} records in the Datanet ({load()})")
    queue = review_queue_bench(seeded["queue"], seeded["curator"], args.requests, contributor_filter="bench-c3")
    print(
        "  wall ms: the request through Django's test client; CPU ms: this process's CPU for it (Django, template,\n"
        "  serializer, driver; not PostgreSQL's), which the neighbours' load does not inflate"
    )
    for name, p50, p95, q50, q95 in queue:
        page_cpu, query_cpu = review_queue_bench.cpu[name]  # type: ignore[attr-defined]
        print(
            f"  {name:36s} wall p50 {p50:6.1f} p95 {p95:6.1f} | query alone p50 {q50:5.1f} p95 {q95:5.1f} | "
            f"page/query {p50 / q50:4.1f}x | CPU page {page_cpu:5.1f} query {query_cpu:4.1f} ({page_cpu / query_cpu:3.1f}x)"
        )
    if args.plans:
        for name, plan in review_queue_bench.plans.items():  # type: ignore[attr-defined]
            print(f"  EXPLAIN ANALYZE, {name}:")
            print("    " + plan.replace("\n", "\n    "))
    if args.no_publish:
        return
    print(f"\nSnapshot publish and export, {args.records:,} approved records ({load()})")
    pub = publish_reading_bench(seeded["publish"], seeded["owner"])
    print(
        f"  snapshot_publish {pub['publish_s']:.2f} s; bare SELECT of the approved rows {pub['select_s']:.2f} s "
        f"-> {pub['publish_s'] / pub['select_s']:.2f}x (aim <= 2x)"
    )
    print(
        f"  JSONL export {pub['export_s']:.2f} s, {pub['export_mb']:.0f} MB, peak traced Python memory "
        f"{pub['export_peak_mb']:.1f} MB, {pub['progress_updates']} progress updates, first after "
        f"{pub['first_progress_s']:.2f} s"
    )
    print(f"\n({load()})")


# --- Main -----------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000, help="records in the big file (default 1M)")
    parser.add_argument("--small", type=int, default=100_000, help="records in the file for the memory check")
    parser.add_argument("--reference-sample", type=int, default=100_000, help="records for datasketch")
    parser.add_argument("--requests", type=int, default=50, help="requests per review-queue case")
    parser.add_argument("--accuracy-sample", type=int, default=5000, help="texts in the labelled near-dup sample")
    parser.add_argument("--ingest-only", action="store_true", help="stop after ingestion and near duplicates")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20k records, 5k small, 5k datasketch")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--child-ingest", help=argparse.SUPPRESS)
    parser.add_argument(
        "--reading-only",
        action="store_true",
        help="only the review queue, publish and export, on a kept database seeded in SQL (not dropped)",
    )
    parser.add_argument("--plans", action="store_true", help="print EXPLAIN ANALYZE of the queue query")
    parser.add_argument("--no-publish", action="store_true", help="with --reading-only: the review queue alone")
    args = parser.parse_args()
    if args.reading_only:
        if args.quick:
            args.records, args.requests = 20_000, 10
        reading_main(args)
        return
    if args.child_ingest:
        _setup_django(args.database_url)
        _child_ingest(args.child_ingest)
        return
    if args.quick:
        args.records, args.small, args.reference_sample, args.requests = 20_000, 5_000, 5_000, 10
    args.reference_sample = min(args.reference_sample, args.records)
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    _recreate_database(args.database_url)
    _setup_django(args.database_url)
    from django.core.management import call_command
    from django.db import connection

    from accounts.models import User
    from datanets import services

    call_command("migrate", verbosity=0)
    print("Datanets benchmark on PostgreSQL")
    print(machine_line())

    print(f"\nData ({load()})")
    big = generate(args.records)
    small = generate(args.small)
    size_mb = big.stat().st_size / 1e6

    owner = User.objects.create_user("bench-owner", password="x" * 12)
    contributor = User.objects.create_user("bench-contributor", password="x" * 12)
    curator = User.objects.create_user("bench-curator", password="x" * 12)
    datanet = services.datanet_create(
        owner=owner, title="Bench", record_kind="labeled_text", labels=LABELS, curators=[curator], domain="bench"
    )
    other = services.datanet_create(
        owner=owner, title="Bench small", record_kind="labeled_text", labels=LABELS, domain="bench"
    )

    print(f"\nIngestion ({load()})")
    small_run = ingest(args, path=small, datanet=other, user=contributor)
    rss_after_small = small_run["children_maxrss_mb"]
    big_run = ingest(args, path=big, datanet=datanet, user=contributor)
    c = big_run["contribution"]
    rate = args.records / big_run["wall"]
    paste = OUT / "paste-3.jsonl"
    paste.write_text(
        "".join(
            json.dumps({"text": f"a fresh paste, line {i}, {time.time()}", "label": LABELS[0]}) + "\n" for i in range(3)
        )
    )
    paste_run = ingest(args, path=paste, datanet=datanet, user=owner)
    copy_s = reference_copy(args.records)
    ref_rate = args.records / copy_s
    print(
        f"  {args.records:,} records ({size_mb:.0f} MB): {big_run['wall']:.1f} s wall, {big_run['cpu']:.1f} s worker "
        f"CPU -> {rate:,.0f} records/s; {c.records_new:,} new, {c.records_duplicate:,} exact, "
        f"{c.records_near_duplicate:,} near duplicates, {c.records_invalid:,} invalid"
    )
    print("  worker timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in big_run["timings"].items()))
    cpu_total = big_run["cpu"] + big_run["db_cpu"]
    print(
        f"  CPU: worker {big_run['cpu']:.1f} s + PostgreSQL backend {big_run['db_cpu']:.1f} s = {cpu_total:.1f} s "
        f"-> {args.records / cpu_total:,.0f} records per CPU-second (on 2 idle cores, with the two overlapping: up "
        f"to {args.records / max(big_run['cpu'], big_run['db_cpu']):,.0f} records/s)"
    )
    print(f"  reference: bare COPY of {args.records:,} pre-hashed rows into a plain table: {copy_s:.1f} s")
    print(
        f"  a 3-record paste into that Datanet, by a fresh worker process (loads the saved band index): "
        f"{paste_run['wall']:.2f} s in the worker, {paste_run['wall_process']:.1f} s with process start-up"
    )
    print(
        f"  peak worker RSS: {big_run['maxrss_mb']:.0f} MB at {args.records:,} records, "
        f"{small_run['maxrss_mb']:.0f} MB at {args.small:,} records "
        f"(RUSAGE_CHILDREN: {rss_after_small:.0f} MB after the small run, {big_run['children_maxrss_mb']:.0f} MB "
        "after both)"
    )

    print(f"\nNear-duplicate detection ({load()})")
    t = big_run["timings"]
    nd_s = t["signatures"] + t["band_keys"] + t["candidates"]
    nd_rate = args.records / nd_s
    ts = small_run["timings"]
    nd_small = args.small / (ts["signatures"] + ts["band_keys"] + ts["candidates"])
    ds_rate = reference_datasketch(big, args.reference_sample, datanet.near_dup_threshold)
    print(
        f"  ours at {args.records:,}: {nd_rate:,.0f} records/s (signatures {t['signatures']:.1f} s, band keys "
        f"{t['band_keys']:.1f} s, band-index lookup and check {t['candidates']:.1f} s; no band rows are written); at {args.small:,}: "
        f"{nd_small:,.0f} records/s"
    )
    print(
        f"  reference: datasketch MinHash + MinHashLSH, in memory, on a {args.reference_sample:,} subsample: "
        f"{ds_rate:,.0f} records/s"
    )

    print(f"\nMinHash signatures alone, {min(args.records, 50_000):,} texts ({load()})")
    libraries = minhash_libraries(big, min(args.records, 50_000))
    for name, rate_ in libraries.items():
        print(f"  {name:50s} {rate_:>10,.0f} records/s")
    print(f"\nNear-duplicate accuracy vs exact Jaccard >= {datanet.near_dup_threshold}, labelled sample ({load()})")
    accuracy = near_dup_accuracy(big, min(args.records, args.accuracy_sample), datanet.near_dup_threshold)
    for name, recall, precision, positives, predicted in accuracy:
        print(
            f"  {name:50s} recall {recall:.4f}  precision {precision:.4f}  ({positives} positives, {predicted} found)"
        )
    if args.ingest_only:
        print(f"\nTotal {time.perf_counter() - started:.0f} s")
        return

    print(f"\nReview queue with {args.records:,} records ({load()})")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    queue = review_queue_bench(datanet, curator, args.requests)
    for name, p50, p95, q50, _q95 in queue:
        print(f"  {name:34s} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms   (queue query alone p50 {q50:5.1f} ms)")
    for name, plan in review_queue_bench.plans.items():  # type: ignore[attr-defined]
        print(f"  EXPLAIN ANALYZE, {name}:")
        print("    " + plan.replace("\n", "\n    "))

    print(f"\nSnapshot publish ({load()})")
    pub = publish_bench(datanet, owner)
    print(
        f"  approved {pub['approved']:,} records with one UPDATE in {pub['update_s']:.1f} s; "
        f"snapshot_publish: {pub['publish_s']:.1f} s; reference: the bare SELECT of those rows {pub['select_s']:.1f} s"
    )

    rows = [
        ("Ingest records/s (end to end)", f"{rate:,.0f}", f"{ref_rate:,.0f} (bare COPY)", rate / ref_rate, ">= 50,000"),
        (
            "Ingest peak worker RSS, MB",
            f"{big_run['maxrss_mb']:.0f}",
            f"{small_run['maxrss_mb']:.0f} (at {args.small:,})",
            big_run["maxrss_mb"] / small_run["maxrss_mb"],
            "< 300",
        ),
        (
            "Near-dup records/s",
            f"{nd_rate:,.0f}",
            f"{ds_rate:,.0f} (datasketch, {args.reference_sample:,})",
            nd_rate / ds_rate,
            "",
        ),
    ]
    for name, p50, p95, q50, _ in queue:
        rows.append((f"Queue {name} p50/p95 ms", f"{p50:.1f}/{p95:.1f}", f"{q50:.1f} (query alone)", p50 / q50, "< 50"))
    rows.append(
        (
            "Snapshot publish, s",
            f"{pub['publish_s']:.1f}",
            f"{pub['select_s']:.1f} (bare SELECT)",
            pub["publish_s"] / pub["select_s"],
            "",
        )
    )
    print(f"\nSummary ({args.records:,} records; {load()})")
    print(f"  {'figure':44s} {'ours':>14s} {'reference':>32s} {'ratio':>7s}  aim")
    for name, ours, ref, ratio, aim in rows:
        print(f"  {name:44s} {ours:>14s} {ref:>32s} {ratio:7.2f}  {aim}")
    print(f"\nTotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
