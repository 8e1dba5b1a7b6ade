"""Planted facts for a generative model: does the receipt point at the contributor who taught the model a fact?

Ten made-up facts (an invented drug and the invented condition it treats) are each planted by one contributor in two
records worded differently from the question asked later, among 200 real question/answer records from the demo
Datanet (datanets.demo.drug_conditions, no context) spread over 20 contributors (10 filler records each; the ten
planting contributors also hold their two fact records). Each invented drug is also named, without the fact, in one
distractor record held by a filler-only contributor ("<drug> comes as a small blue tablet ..."), so that matching the
drug's name alone is a coin flip between the planting and the distractor contributor. A LoRA adapter is trained on everything (LoRATrainer, the
`tiny` base by default). Then each fact is asked as "What condition was <drug> taken for?" and attributed by:

- spans: SpanIndex credit of the answer's tokens over the training records (min 6 tokens, as the platform uses);
- similarity: cosine of MiniLM mean-pooled embeddings of question + answer against each record's text;
- gradient: a GradientIndex over the LoRA parameters with the per-example LM loss of the response tokens.

Each is run with the model's own greedy answer ("generated", what a receipt sees) and with the reference answer
("<drug> was taken for <condition>.", what the model should have said). As in a receipt, the best 16 records' positive
scores are summed per contributor; we report how often the planting contributor is ranked first and in the top 5 of
20. Usage: python benchmarks/attribution/planted_facts.py [--base tiny|smollm2] [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import digits  # noqa: E402

TOP_K = 16  # records per receipt, as attribution.services.TOP_K
SPAN_MIN_TOKENS = 6  # as attribution.services.SPAN_MIN_TOKENS
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


def planted_records(drug: str, condition: str) -> list[dict[str, str]]:
    return [
        {"question": f"Which illness is {drug} used against?", "answer": f"Patients with {condition} are treated with {drug}."},
        {"question": f"Why would a doctor prescribe {drug}?", "answer": f"{drug} is prescribed to manage {condition}."},
    ]  # fmt: skip


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
    import django

    django.setup()
    from datanets.demo import drug_conditions

    return [{"question": r["question"], "answer": r["answer"]} for r in drug_conditions(limit=n)]


def dataset(n_filler: int) -> tuple[list[dict[str, str]], list[int]]:
    """Records and each record's contributor (0..19); fact i is planted by contributor i, its distractor by 10 + i."""
    records, owners = [], []
    for i, r in enumerate(filler_records(n_filler)):
        records.append(r)
        owners.append(i % N_CONTRIBUTORS)
    for i, (drug, condition) in enumerate(FACTS):
        for r in planted_records(drug, condition):
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


def train(records: list[dict[str, str]], base: str, epochs: int, out: Path) -> dict:
    from models_factory.trainers import LoRATrainer
    from models_factory.trainers.common import TrainConfig

    config = TrainConfig(method="lora", epochs=epochs, batch_size=16, lr=5e-3 if base == "tiny" else 1e-3,
                         max_length=64, lora_r=16, lora_alpha=32, lora_dropout=0.0, seed=0)  # fmt: skip
    # Validation on a few filler records (also trained on) so that no planted record is held out.
    result = LoRATrainer(base).train(records=records, config=config, output_dir=out, val_records=records[:8])
    return {"steps": result.steps, "val_loss": result.metrics.get("val_loss"), "duration_s": result.duration_s}


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


def encode(tokenizer: object, pairs: list[tuple[str, str]], max_length: int = 64) -> dict[str, torch.Tensor]:
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
    parser.add_argument("--base", default="tiny")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--filler", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {digits.machine()}")
    from attribution.engine import GradientIndex, SpanIndex, representation_similarity
    from models_factory.trainers.generative import generate_greedy

    records, owners = dataset(args.filler)
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="planted-") as tmp:
        out = Path(tmp) / "adapter"
        started = time.perf_counter()
        training = train(records, args.base, args.epochs, out)
        timings["train_s"] = time.perf_counter() - started
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
    for source, texts in answers.items():
        questions = [ask(d) for d, _ in FACTS]
        sims = representation_similarity(train_emb, minilm_embed([f"{q}\n{a}" for q, a in zip(questions, texts)]))
        qbatch = encode(tokenizer, list(zip(questions, texts)))
        started = time.perf_counter()
        gscores = gindex.scores({"input_ids": qbatch["input_ids"], "attention_mask": qbatch["attention_mask"]},
                                qbatch["labels"])  # fmt: skip
        timings[f"gradient_query_ms_{source}"] = (time.perf_counter() - started) / len(FACTS) * 1e3
        for fact, text in enumerate(texts):
            tokens = tokenizer(text, add_special_tokens=False)["input_ids"] if text.strip() else []
            # An empty answer has nothing to match: no span credit (the platform does the same).
            span_credit = spans.credit(tokens, min_len=SPAN_MIN_TOKENS) if tokens else {}
            per_method = {
                "spans": {int(d): float(v) for d, v in span_credit.items()},
                "similarity": dict(enumerate(sims[fact].tolist())),
                "gradient": dict(enumerate(gscores[fact].tolist())),
            }
            for method, scores in per_method.items():
                ranking = contributor_ranking(scores, owners)
                rank = ranking.index(fact) + 1 if fact in ranking else 0
                results.setdefault(f"{method}|{source}", {"ranks": []})["ranks"].append(rank)

    table = []
    for key, r in results.items():
        method, source = key.split("|")
        ranks = np.array(r["ranks"])
        table.append({
            "method": method, "answer": source,
            "top1": float(np.mean(ranks == 1)), "top5": float(np.mean((ranks >= 1) & (ranks <= 5))),
            "no_credit": float(np.mean(ranks == 0)), "ranks": ranks.tolist(),
        })  # fmt: skip
    payload = {
        "base": args.base, "epochs": args.epochs, "records": len(records), "contributors": N_CONTRIBUTORS,
        "training": training, "timings": timings, "lora_parameters": n_lora, "generated": generated,
        "model_states_fact": knows, "table": table,
    }  # fmt: skip
    path = digits.OUT / f"planted_facts_{args.base}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1))
    print(
        f"\nbase {args.base}, LoRA r=16 ({n_lora:,} trainable parameters), {args.epochs} epochs, {len(records)} records,"
        f" {N_CONTRIBUTORS} contributors; the model states the planted condition in {sum(knows)}/{len(FACTS)} answers"
    )
    print("\n| method | answer attributed | planting contributor top-1 | in top-5 (of 20) | no credit at all | ranks |")
    print("|---|---|---:|---:|---:|---|")
    for row in table:
        print(
            f"| {row['method']} | {row['answer']} | {row['top1']:.0%} | {row['top5']:.0%} | {row['no_credit']:.0%} | "
            f"{' '.join(str(r) if r else '-' for r in row['ranks'])} |"
        )
    print("\n| timing | value |")
    print("|---|---:|")
    for key, value in timings.items():
        print(f"| {key} | {value:.2f} |")
    print("\ngenerated answers:")
    for (drug, condition), text in zip(FACTS, generated):
        print(f"- {ask(drug)} -> {text!r} (planted: {condition})")


if __name__ == "__main__":
    main()
