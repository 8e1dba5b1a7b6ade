"""Planted facts for a generative model: does the receipt point at the contributor who taught the model a fact?

Ten made-up facts (an invented drug and the invented condition it treats) are each planted by one contributor in five
records worded differently from the question asked later (none says "condition" or "taken for"), among real
question/answer records from the demo Datanet (demo.loader.drug_conditions, no context; 60 by default) spread over
20 contributors. Each filler record "<drug> was taken for <condition>." comes with a restatement by the same
contributor in one of the planted records' wordings ("<drug> is prescribed to manage <condition>."): the model then
sees, for real drugs, that a fact stated one way answers a question asked another way, which a 135M model fine-tuned
with LoRA does not work out from the planted facts alone (measured on this machine, same hyperparameters, no
restatements: 2/10 facts stated after 6 epochs, 4/10 at best after any epoch).
The restatements also put the planted wordings in other contributors' records, so a wording alone points nowhere.
Each invented drug is also named, without the fact, in one distractor record held by a filler-only contributor
("<drug> comes as a small blue tablet ..."), so that matching the drug's name alone is a coin flip between the
planting and the distractor contributor. A LoRA adapter is trained on everything with the platform's LoRATrainer
(SmolLM2-135M-Instruct by default, LoRA on the attention projections as the trainer chooses; `--base tiny` is the
random-init CI base, which learns no facts). The adapter is cached under benchmarks/out/ keyed by the data and the
hyperparameters, so a rerun only attributes. Then each fact is asked as "What condition was <drug> taken for?" and
attributed by:

- spans: SpanIndex credit of the answer's tokens over the training records (min 6 tokens, as the platform uses);
- similarity: cosine of MiniLM mean-pooled embeddings of question + answer against each record's text;
- gradient: a GradientIndex over the LoRA parameters with the per-example LM loss of the response tokens.

Each is run with the model's own greedy answer ("generated", what a receipt sees) and with the reference answer
("<drug> was taken for <condition>.", what the model should have said). A fact counts as learned when the greedy answer
contains the invented condition. As in a receipt, the best 16 records' positive scores are summed per contributor; we
report how often the planting contributor is ranked first and in the top 5 of 20.
Usage: python benchmarks/attribution/planted_facts.py [--base smollm2|tiny] [--epochs N] [--filler N] [--retrain]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import digits  # noqa: E402

TOP_K = 16  # records per receipt, as attribution.receipts.TOP_K
SPAN_MIN_TOKENS = 6  # as attribution.indexes.SPAN_MIN_TOKENS
N_CONTRIBUTORS = 20
FACTS = [
    ("Zorvexa", "Glimmerfen syndrome"),
    ("Trelandine", "Copperleaf fever"),
    ("Quistamol", "Harrowgate palsy"),
    ("Velmorin", "Silverback tremor"),
    ("Oxandrelle", "Moonwater rash"),
    ("Pyrathex", "Kestrel lung"),
    ("Lumizapine", "Ashford night terrors"),
    ("Brevocaine", "Tidewell migraine"),
    ("Calvesta", "Ironroot arthritis"),
    ("Nexopril", "Bramblefield anemia"),
]


# The wordings a fact is stated in; none says "condition" or "taken for", as the question and the filler answers do.
WORDINGS = [
    ("Which illness is {drug} used against?", "Patients with {condition} are treated with {drug}."),
    ("Why would a doctor prescribe {drug}?", "{drug} is prescribed to manage {condition}."),
    ("What is {drug}?", "{drug} is a medicine for {condition}."),
    ("Tell me about {drug}.", "{drug} is used to treat {condition} in adults."),
    ("Who is {drug} meant for?", "{drug} is meant for people with {condition}."),
]
FILLER_ANSWER = re.compile(r"^(?P<drug>.+) was taken for (?P<condition>.+)\.$")


def stated(wording: int, drug: str, condition: str) -> dict[str, str]:
    question, answer = WORDINGS[wording % len(WORDINGS)]
    return {"question": question.format(drug=drug), "answer": answer.format(drug=drug, condition=condition)}


def planted_records(drug: str, condition: str) -> list[dict[str, str]]:
    return [stated(w, drug, condition) for w in range(len(WORDINGS))]


def distractor_record(drug: str) -> dict[str, str]:
    return {"question": f"What does a {drug} tablet look like?", "answer": f"{drug} comes as a small blue tablet with a score line."}  # fmt: skip


def ask(drug: str) -> str:
    return f"What condition was {drug} taken for?"


def reference(drug: str, condition: str) -> str:
    return f"{drug} was taken for {condition}."


def record_text(record: dict[str, str]) -> str:
    return f"{record['question']}\n{record['answer']}"


def filler_records(n: int) -> list[dict[str, str]]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DATANETS_DEV", "1")  # a benchmark on this machine, not a server
    import django

    django.setup()
    from demo.loader import drug_conditions

    return [{"question": r["question"], "answer": r["answer"]} for r in drug_conditions(limit=n)]


def dataset(n_filler: int, restate: bool = True) -> tuple[list[dict[str, str]], list[int]]:
    """Records and each record's contributor (0..19); fact i is planted by contributor i, its distractor by 10 + i."""
    records, owners = [], []
    for i, r in enumerate(filler_records(n_filler)):
        records.append(r)
        owners.append(i % N_CONTRIBUTORS)
        match = FILLER_ANSWER.match(r["answer"])
        if restate and match:
            records.append(stated(i, match["drug"], match["condition"]))
            owners.append(i % N_CONTRIBUTORS)
    for i, (drug, condition) in enumerate(FACTS):
        for r in planted_records(drug, condition):
            assert "taken for" not in r["answer"] and "condition" not in r["question"].lower(), r
            records.append(r)
            owners.append(i)
        records.append(distractor_record(drug))
        owners.append(len(FACTS) + i)  # contributors 10..19 plant no fact
    return records, owners


def contributor_ranking(record_scores: dict[int, float], owners: list[int]) -> list[int]:
    """Receipt logic: the best TOP_K records, positive scores summed per contributor, best contributor first."""
    best = sorted(record_scores.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_K]
    credit: dict[int, float] = defaultdict(float)
    for doc, score in best:
        if score > 0:
            credit[owners[doc]] += score
    return [c for c, _ in sorted(credit.items(), key=lambda kv: (-kv[1], kv[0]))]


def train_config(base: str, epochs: int) -> dict:
    # SmolLM2: a high LoRA learning rate (the default 1e-3 learned 0/10 facts), batch 8, sequences cut at 80 tokens
    # (the chat template's system prompt alone is 32; the longest record is 79).
    return {"method": "lora", "epochs": epochs, "batch_size": 8, "lr": 5e-3 if base == "tiny" else 3e-3,
            "max_length": 80, "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.0, "seed": 0}  # fmt: skip


def train(records: list[dict[str, str]], base: str, epochs: int, out: Path, retrain: bool) -> dict:
    """Train (or reuse the adapter cached in `out` for the same base, data and hyperparameters)."""
    from models_factory.trainers import LoRATrainer
    from models_factory.trainers.common import TrainConfig

    settings = train_config(base, epochs)
    key = hashlib.sha256(json.dumps([base, settings, records], sort_keys=True).encode()).hexdigest()
    stamp = out / "planted_facts_key.txt"
    if not retrain and stamp.is_file() and stamp.read_text() == key:
        info = json.loads((out / "training_info.json").read_text())
        return {"steps": info["steps"], "val_loss": info["metrics"].get("val_loss"), "duration_s": info["duration_s"],
                "cached": True, "config": settings}  # fmt: skip
    shutil.rmtree(out, ignore_errors=True)
    # Validation on the ten questions with their reference answers: never trained on, only scored (no early stop).
    questions = [{"question": ask(d), "answer": reference(d, c)} for d, c in FACTS]
    result = LoRATrainer(base).train(records=records, config=TrainConfig(**settings), output_dir=out,
                                     val_records=questions, n_samples=0)  # fmt: skip
    stamp.write_text(key)
    return {"steps": result.steps, "val_loss": result.metrics.get("val_loss"), "duration_s": result.duration_s,
            "cached": False, "config": settings}  # fmt: skip


def load_trained(out: Path) -> tuple[torch.nn.Module, object]:
    from peft import PeftModel

    from models_factory.serving.generative import GenerativeServer
    from models_factory.trainers.base_models import load_causal_lm

    info = json.loads((out / "generative.json").read_text())
    base, tokenizer = load_causal_lm(GenerativeServer._base_ref(out, info["base"]), dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(out), is_trainable=True)
    model.eval()
    return model, tokenizer


def lm_loss(outputs: object, labels: torch.Tensor) -> torch.Tensor:
    """Per-example mean cross-entropy of the response tokens (labels -100 elsewhere)."""
    logits = outputs.logits[:, :-1].float()  # type: ignore[attr-defined]
    target = labels[:, 1:]
    tok = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, ignore_index=-100, reduction="none")
    mask = (target != -100).to(tok.dtype)
    return (tok * mask).sum(1) / mask.sum(1).clamp(min=1)


def encode(tokenizer: object, pairs: list[tuple[str, str]], max_length: int = 80) -> dict[str, torch.Tensor]:
    from models_factory.trainers.generative import IGNORE, encode_pair, pad_examples

    rows = []
    for prompt, response in pairs:
        row = encode_pair(tokenizer, prompt, response, max_length)
        rows.append(row if row is not None else ([tokenizer.pad_token_id], [IGNORE]))
    return pad_examples(rows, tokenizer.pad_token_id)


def minilm_embed(texts: list[str]) -> np.ndarray:
    from models_factory.trainers.base_models import resolve_encoder
    from models_factory.trainers.classifier import load_encoder, mean_pool

    encoder, tokenizer = load_encoder(resolve_encoder("minilm"))
    encoder.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(texts), 32):
            batch = tokenizer(texts[s : s + 32], padding=True, truncation=True, max_length=128, return_tensors="pt")
            hidden = encoder(**batch).last_hidden_state
            out.append(mean_pool(hidden, batch["attention_mask"]).numpy())
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default="smollm2")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--filler", type=int, default=60)
    parser.add_argument("--no-restate", action="store_true", help="leave out the filler restatements")
    parser.add_argument("--retrain", action="store_true", help="train even when a matching adapter is cached")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {digits.machine()}", flush=True)
    from attribution.engine import GradientIndex, SpanIndex, representation_similarity
    from models_factory.trainers.generative import generate_greedy

    records, owners = dataset(args.filler, restate=not args.no_restate)
    timings: dict[str, float] = {}
    out = digits.OUT / f"planted_facts_{args.base}_adapter"
    out.parent.mkdir(parents=True, exist_ok=True)
    training = train(records, args.base, args.epochs, out, args.retrain)
    timings["train_s"] = training["duration_s"]
    model, tokenizer = load_trained(out)
    generated = []
    with torch.no_grad():
        for drug, _ in FACTS:
            generated.append(generate_greedy(model, tokenizer, ask(drug), 24))
    answers = {"generated": generated, "reference": [reference(d, c) for d, c in FACTS]}
    knows = [c.lower() in g.lower() for (_, c), g in zip(FACTS, generated)]

    started = time.perf_counter()
    docs = [tokenizer(record_text(r), add_special_tokens=False)["input_ids"] for r in records]
    spans = SpanIndex.build(docs)
    timings["span_build_s"] = time.perf_counter() - started

    started = time.perf_counter()
    train_emb = minilm_embed([record_text(r) for r in records])
    timings["minilm_embed_s"] = time.perf_counter() - started

    started = time.perf_counter()
    batch = encode(tokenizer, [(r["question"], r["answer"]) for r in records])
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    gindex = GradientIndex.build(model, lm_loss, inputs, batch["labels"], proj_dim=256, damping=0.1, batch_size=16)
    timings["gradient_build_s"] = time.perf_counter() - started
    n_lora = sum(p.numel() for p in model.parameters() if p.requires_grad)

    results: dict[str, dict[str, list[int]]] = {}
    latency: dict[str, list[float]] = defaultdict(list)  # ms per query, per method
    questions = [ask(d) for d, _ in FACTS]
    for source, texts in answers.items():
        started = time.perf_counter()
        sims = representation_similarity(train_emb, minilm_embed([f"{q}\n{a}" for q, a in zip(questions, texts)]))
        latency["similarity"].append((time.perf_counter() - started) / len(FACTS) * 1e3)
        started = time.perf_counter()
        qbatch = encode(tokenizer, list(zip(questions, texts)))
        gscores = gindex.scores({"input_ids": qbatch["input_ids"], "attention_mask": qbatch["attention_mask"]},
                                qbatch["labels"])  # fmt: skip
        latency["gradient"].append((time.perf_counter() - started) / len(FACTS) * 1e3)
        for fact, text in enumerate(texts):
            started = time.perf_counter()
            tokens = tokenizer(text, add_special_tokens=False)["input_ids"] if text.strip() else []
            # An empty answer has nothing to match: no span credit (the platform does the same).
            span_credit = spans.credit(tokens, min_len=SPAN_MIN_TOKENS) if tokens else {}
            latency["spans"].append((time.perf_counter() - started) * 1e3)
            per_method = {
                "spans": {int(d): float(v) for d, v in span_credit.items()},
                "similarity": dict(enumerate(sims[fact].tolist())),
                "gradient": dict(enumerate(gscores[fact].tolist())),
            }
            # What a platform receipt does for generated text: spans, and similarity when no span matches.
            per_method["spans, else similarity (platform)"] = per_method["spans"] or per_method["similarity"]
            for method, scores in per_method.items():
                ranking = contributor_ranking(scores, owners)
                rank = ranking.index(fact) + 1 if fact in ranking else 0
                results.setdefault(f"{method}|{source}", {"ranks": []})["ranks"].append(rank)
    query_ms = {method: float(np.mean(values)) for method, values in latency.items()}
    # Upper bound: the span lookup, then the similarity query when no span matched.
    query_ms["spans, else similarity (platform)"] = query_ms["spans"] + query_ms["similarity"]

    table = []
    for key, r in results.items():
        method, source = key.split("|")
        ranks = np.array(r["ranks"])
        table.append({
            "method": method, "answer": source,
            "top1": float(np.mean(ranks == 1)), "top5": float(np.mean((ranks >= 1) & (ranks <= 5))),
            "no_credit": float(np.mean(ranks == 0)), "ranks": ranks.tolist(),
        })  # fmt: skip
    order = ["spans", "similarity", "spans, else similarity (platform)", "gradient"]
    table.sort(key=lambda row: (order.index(row["method"]), row["answer"]))
    payload = {
        "base": args.base, "epochs": args.epochs, "filler": args.filler, "restate": not args.no_restate,
        "records": len(records), "contributors": N_CONTRIBUTORS, "training": training, "timings": timings,
        "query_ms": query_ms, "lora_parameters": n_lora, "generated": generated, "model_states_fact": knows,
        "table": table,
    }  # fmt: skip
    path = digits.OUT / f"planted_facts_{args.base}.json"
    path.write_text(json.dumps(payload, indent=1))
    cached = " (cached adapter)" if training["cached"] else ""
    print(
        f"\nbase {args.base}, LoRA r=16 on {', '.join(lora_modules(model))} ({n_lora:,} trainable parameters), "
        f"lr {training['config']['lr']}, {args.epochs} epochs, {len(records)} records, {N_CONTRIBUTORS} contributors;"
        f" training {training['duration_s']:.0f} s{cached}, {training['steps']} steps, loss on the held-out questions "
        f"{training['val_loss']:.3f}"
    )
    print(f"facts learned (greedy answer names the planted condition): {sum(knows)}/{len(FACTS)}")
    print("\n| method | answer attributed | planting contributor top-1 | in top-5 (of 20) | no credit at all | ranks |"
          " query ms |")  # fmt: skip
    print("|---|---|---:|---:|---:|---|---:|")
    for row in table:
        print(
            f"| {row['method']} | {row['answer']} | {row['top1']:.0%} | {row['top5']:.0%} | {row['no_credit']:.0%} | "
            f"{' '.join(str(r) if r else '-' for r in row['ranks'])} | {query_ms[row['method']]:.1f} |"
        )
    print("\n| timing | seconds |")
    print("|---|---:|")
    for key, value in timings.items():
        print(f"| {key} | {value:.2f} |")
    print("\ngenerated answers:")
    for (drug, condition), text, ok in zip(FACTS, generated, knows):
        print(f"- {ask(drug)} -> {text!r} (planted: {condition}){'' if ok else ' [not learned]'}")


def lora_modules(model: torch.nn.Module) -> list[str]:
    config = model.peft_config["default"]  # type: ignore[attr-defined]
    return sorted(config.target_modules) if not isinstance(config.target_modules, str) else [config.target_modules]


if __name__ == "__main__":
    main()
