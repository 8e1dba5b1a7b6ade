"""Span index: our numpy suffix array (attribution.engine.SpanIndex) against the ``infini-gram`` package on the same
token corpus: build time, index bytes per token, and the p50 of one OLMoTrace-style query (every maximal span of at
least 8 tokens of a 256-token output that copies 100 tokens of a training document).

Corpus: Zipf(1.2) token ids over a 32,000-token vocabulary (u16 for infini-gram), in 200-token documents. infini-gram
is fed the same ids (its tokenized file and offsets are written here, in its format), then builds its suffix array
with its own Rust indexer (``infini_gram.indexing``, 2 CPUs); queries go through ``InfiniGramEngine.attribute``.
infini-gram is a benchmark-only dependency (requirements-dev.txt).

Usage: OMP_NUM_THREADS=2 nice -n 10 python benchmarks/attribution/spans_infinigram.py [--tokens 10000000]
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import digits  # noqa: E402

from attribution.engine import SpanIndex  # noqa: E402

VOCAB = 32_000
DOC_LEN = 200
MIN_LEN = 8


def corpus(n_tokens: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    tokens = (rng.zipf(1.2, size=n_tokens) % VOCAB).astype(np.int64)
    docs = np.split(tokens, np.arange(DOC_LEN, n_tokens, DOC_LEN))
    outputs = []
    for i in range(30):
        copied = docs[(i * 997) % len(docs)][:100]
        outputs.append(np.concatenate([rng.zipf(1.2, 78) % VOCAB, copied, rng.zipf(1.2, 78) % VOCAB]).astype(np.int64))
    return docs, outputs


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def ours(docs: list[np.ndarray], outputs: list[np.ndarray], work: Path) -> dict[str, float]:
    started = time.perf_counter()
    index = SpanIndex.build(docs)
    build = time.perf_counter() - started
    index.save(work / "ours")
    loaded = SpanIndex.load(work / "ours", mmap=True)
    loaded.find_spans(outputs[0], min_len=MIN_LEN)
    ms, longest = [], []
    for out in outputs:
        t0 = time.perf_counter()
        spans = loaded.find_spans(out, min_len=MIN_LEN)
        ms.append((time.perf_counter() - t0) * 1e3)
        longest.append(max((s.length for s in spans), default=0))
    return {
        "build_s": build,
        "bytes_per_token": folder_bytes(work / "ours") / sum(len(d) for d in docs),
        "query_p50_ms": float(np.median(ms)),
        "query_p95_ms": float(np.percentile(ms, 95)),
        "longest": longest,
    }


def infinigram(docs: list[np.ndarray], outputs: list[np.ndarray], work: Path) -> dict[str, object]:
    try:
        from infini_gram.engine import InfiniGramEngine
    except ImportError as exc:
        return {"error": f"infini-gram is not installed ({exc}); pip install -r requirements-dev.txt"}
    save = work / "ig"
    data = work / "ig-data"
    save.mkdir()
    data.mkdir()
    started = time.perf_counter()
    # Its tokenized format: per document the separator 0xffff then the u16 ids; offsets are u64 byte positions.
    with open(save / "tokenized.0", "wb") as ds, open(save / "offset.0", "wb") as od:
        offset = 0
        for doc in docs:
            blob = b"\xff\xff" + doc.astype(np.uint16).tobytes()
            ds.write(blob)
            od.write(np.array([offset], dtype=np.uint64).tobytes())
            offset += len(blob)
    proc = subprocess.run(
        [sys.executable, "-m", "infini_gram.indexing", "--data_dir", str(data), "--save_dir", str(save)]
        + ["--token_dtype", "u16", "--cpus", "2", "--mem", "4", "--ulimit", "4096"],
        capture_output=True,
        text=True,
    )
    build = time.perf_counter() - started
    if proc.returncode != 0 or not (save / "table.0").exists():
        return {"error": f"infini-gram indexing failed: {(proc.stdout + proc.stderr)[-800:]}"}
    engine = InfiniGramEngine(index_dir=str(save), eos_token_id=VOCAB, vocab_size=65535, token_dtype="u16")
    engine.attribute(input_ids=outputs[0].tolist(), delim_ids=[], min_len=MIN_LEN, max_cnt=1_000_000, enforce_bow=False)
    ms, longest = [], []
    for out in outputs:
        t0 = time.perf_counter()
        result = engine.attribute(
            input_ids=out.tolist(), delim_ids=[], min_len=MIN_LEN, max_cnt=1_000_000, enforce_bow=False
        )
        ms.append((time.perf_counter() - t0) * 1e3)
        longest.append(max((s["length"] for s in result["spans"]), default=0))
    return {
        "build_s": build,
        "bytes_per_token": folder_bytes(save) / sum(len(d) for d in docs),
        "query_p50_ms": float(np.median(ms)),
        "query_p95_ms": float(np.percentile(ms, 95)),
        "longest": longest,
    }


def main() -> None:
    n = int(sys.argv[sys.argv.index("--tokens") + 1]) if "--tokens" in sys.argv else 10_000_000
    print(f"machine: {digits.machine()}")
    docs, outputs = corpus(n)
    rows: dict[str, dict] = {}
    work = Path(tempfile.mkdtemp(prefix="spans-"))
    try:
        rows["ours (numpy suffix array)"] = ours(docs, outputs, work)
        rows["infini-gram 2.6.0"] = infinigram(docs, outputs, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = digits.OUT / "spans_infinigram.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1, default=str))
    print(f"\n{n:,} tokens, {len(docs):,} documents, 256-token outputs, spans of >= {MIN_LEN} tokens")
    print("| index | build s | bytes/token | query p50 ms | p95 ms | same longest spans as ours |")
    print("|---|---:|---:|---:|---:|---|")
    reference = rows["ours (numpy suffix array)"]
    for name, r in rows.items():
        if "error" in r:
            print(f"| {name} | {r['error']} |")
            continue
        same = r["longest"] == reference["longest"]
        print(
            f"| {name} | {r['build_s']:.1f} | {r['bytes_per_token']:.1f} | {r['query_p50_ms']:.2f} | "
            f"{r['query_p95_ms']:.2f} | {same} |"
        )


if __name__ == "__main__":
    main()
