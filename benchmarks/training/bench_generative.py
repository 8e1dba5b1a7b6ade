"""The demo Q&A LoRA against its two baselines, on held-out questions.

Data: the demo Datanet *Drug conditions Q&A* as `load_demo` publishes it (demo.loader.drug_conditions: "What
condition was <drug> taken for?" -> "<drug> was taken for <condition>.", with the review as context; the last 10
records stay pending in the demo, exact duplicates are one record) and the snapshot's own split (10% validation by
record hash, datanets.services.snapshots.split_of). Three answerers, scored on the validation questions by the
trainer's `qa_accuracy` (exact match of the normalized answer; contains: the output holds the part of the reference
the question does not already say, e.g. "depression"), all in one training run as the model card shows them:

- ours: LoRA on SmolLM2-135M-Instruct with the platform's default recipe (`lora_recipe`), greedy decoding;
- base model: the same base without the adapter, same prompts;
- lookup: the training split's most frequent answer to the same question, else its most frequent answer.

    OMP_NUM_THREADS=2 nice -n 10 .venv/bin/python benchmarks/training/bench_generative.py            # the default
    .venv/bin/python benchmarks/training/bench_generative.py --set epochs=4 --set lr=1e-3              # a variant
    .venv/bin/python benchmarks/training/bench_generative.py --base tiny                              # CI size

Prints the machine, the recipe, the three rows side by side (ours / baseline as ratios) and the wall times; writes
benchmarks/out/bench_generative.json. Wall times on a shared CPU are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATANETS_DEV", "1")  # a benchmark on this machine, not a server


def machine() -> dict[str, Any]:
    """The training benchmarks' machine description, with the load average (helpers share this box)."""
    from benchmarks.training.train_bench import machine as base_machine

    return {**base_machine(), "load_average": os.getloadavg()[0]}


def demo_split(validation_percent: int = 10) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    import django

    django.setup()
    from core.canonical import content_hash
    from datanets.ingest.schema import validate_record
    from datanets.services.snapshots import split_of
    from demo.loader import drug_conditions

    train, val, seen = [], [], set()
    for raw in drug_conditions()[:-10]:  # the demo leaves its last 10 records pending
        record = validate_record(raw, kind="qa")
        digest = content_hash(record)
        if digest in seen:
            continue
        seen.add(digest)
        (val if split_of(digest, validation_percent) == "validation" else train).append(record)
    return train, val


class Clock:
    """Wall time of each phase the trainer reports."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.phases: dict[str, float] = {}
        self._current: tuple[str, float] | None = None

    def on_phase(self, phase: str, done: int, total: int, unit: str, rate: float, eta_s: float | None) -> None:
        now = time.perf_counter()
        if self._current is None or self._current[0] != phase:
            if self._current is not None:
                self.phases[self._current[0]] = now - self._current[1]
            self._current = (phase, now)

    def on_progress(self, step: int, total_steps: int, epoch: float, loss: float, rate: float, eta: float) -> None:
        if step % 10 == 0 or step == total_steps:
            elapsed = time.perf_counter() - self.started
            print(f"  step {step}/{total_steps} loss {loss:.3f} · {elapsed:.0f} s · {eta:.0f} s left", flush=True)

    def should_cancel(self) -> bool:
        return False

    def on_checkpoint(self, path: Path) -> None:
        pass

    def finish(self) -> None:
        if self._current is not None:
            self.phases[self._current[0]] = time.perf_counter() - self._current[1]
            self._current = None


def parse_set(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, _, raw = item.partition("=")
        out[key] = json.loads(raw) if raw not in {"", "None"} else None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default="smollm2")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "bench_generative.json"))
    args = parser.parse_args()

    from models_factory.trainers.common import TrainConfig
    from models_factory.trainers.generative import LoRATrainer, lora_recipe

    train, val = demo_split()
    recipe = {**lora_recipe(args.base), **parse_set(args.overrides)}
    config = TrainConfig.from_dict({"method": "lora", **recipe})
    info = machine()
    print(f"machine: {info}")
    print(f"data: demo Q&A, {len(train)} training records, {len(val)} validation questions")
    print(f"recipe ({args.base}): {config.to_dict()}", flush=True)
    clock = Clock()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = LoRATrainer(args.base).train(
            records=train, val_records=val, config=config, output_dir=Path(tmp) / "adapter", callbacks=clock
        )
    clock.finish()
    wall = time.perf_counter() - started
    metrics = result.metrics
    rows = {
        "ours (LoRA)": {k: metrics[k] for k in ("exact_match", "contains_answer")},
        "base model, no adapter": metrics["baselines"]["base_model"],
        "lookup (same question)": metrics["baselines"]["lookup"],
    }
    print(f"\n{'answerer':<26} {'exact match':>12} {'contains':>10}")
    for name, row in rows.items():
        print(f"{name:<26} {row['exact_match']:>12.3f} {row['contains_answer']:>10.3f}")
    ours = rows["ours (LoRA)"]
    for name in ("base model, no adapter", "lookup (same question)"):
        ref = rows[name]
        ratios = [f"{ours[k] / ref[k]:.2f}x" if ref[k] else "inf" for k in ("exact_match", "contains_answer")]
        print(f"ours / {name}: exact {ratios[0]}, contains {ratios[1]}")
    training = metrics["training"]
    print(
        f"\nwall {wall:.0f} s: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in clock.phases.items())
        + f"; {result.steps} steps, {training['examples_per_s']:.2f} examples/s, max_length {training['max_length']}"
        f" ({training['n_truncated']} of {training['n_train_examples']} truncated); val_loss {metrics['val_loss']:.3f}"
    )
    for s in metrics["samples"]:
        print(f"  ref: {s['reference']!r}\n  ours: {s['generated']!r}\n  base: {s['base_model']!r}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "machine": info,
        "base": args.base,
        "config": config.to_dict(),
        "n_train": len(train),
        "n_validation": len(val),
        "rows": rows,
        "wall_s": wall,
        "phases_s": clock.phases,
        "training": training,
        "val_loss": metrics["val_loss"],
        "samples": metrics["samples"],
    }
    history = json.loads(out.read_text()) if out.is_file() else []
    history.append(record)
    out.write_text(json.dumps(history, indent=2) + "\n")


if __name__ == "__main__":
    main()
