"""LoRA fine-tuning of a causal LM on instruction/response or question/answer(/context) records.

The loss covers only the response tokens. The prompt is wrapped in the tokenizer's chat template when it has one,
else in a plain "### Instruction / ### Response" format; serving uses the same `prompt_text`.
Artifact folder: adapter_model.safetensors + adapter_config.json (PEFT), the tokenizer, generative.json (base model
id, path and SHA-256, prompt format, max_length and the longest prompt training kept) and training_info.json; the
`tiny` base is copied in as `base_model/`.

No record is dropped for length: a long example loses the end of its prompt (its context first) and keeps its answer;
`max_length` 0 (the recipes' default) picks the length from the data. After training, the validation questions are
answered greedily by the adapter, by the base model without it, and by a same-question lookup over the training split;
exact match and contains-the-answer for all three go into the metrics (`baselines`), as the model card shows them.
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
import time
import unicodedata
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.canonical import content_hash
from models_factory.trainers.base_models import (
    SMOLLM2,
    TINY,
    BaseModelRef,
    build_tiny_base,
    load_causal_lm,
    resolve_causal_lm,
    resolve_local,
)
from models_factory.trainers.common import (
    GENERATIVE_METHODS,
    Callbacks,
    NullCallbacks,
    PhaseMeter,
    TrainConfig,
    TrainResult,
    atomic_output_dir,
    dir_size,
    library_versions,
    set_seed,
    write_json,
)
from models_factory.trainers.device import choose_device, configure_threads
from models_factory.trainers.errors import DataError
from models_factory.trainers.loop import LoopSpec, clear_checkpoints, iter_chunks, run_loop

MIN_RECORDS = 4
ARTIFACT_FORMAT = "datanets-lora-adapter"
IGNORE = -100
PLAIN_FORMAT = "### Instruction:\n{prompt}\n\n### Response:\n"
PROMPT_KEYS = ("instruction", "question", "prompt")
RESPONSE_KEYS = ("response", "answer", "output", "completion")
CONTEXT_KEYS = ("context", "input")


def record_question(record: dict[str, Any]) -> str:
    """The question or instruction alone (without its context): what the lookup baseline keys on."""
    return next((str(record[k]) for k in PROMPT_KEYS if record.get(k)), "").strip()


def record_to_pair(record: dict[str, Any], index: int) -> tuple[str, str]:
    """(prompt, response) from {instruction|question|prompt, response|answer|output|completion, context|input?}."""
    prompt = next((str(record[k]) for k in PROMPT_KEYS if record.get(k)), "").strip()
    response = next((str(record[k]) for k in RESPONSE_KEYS if record.get(k)), "").strip()
    context = next((str(record[k]) for k in CONTEXT_KEYS if record.get(k)), "").strip()
    if not prompt:
        raise DataError(f"record {index} has no instruction or question (one of {', '.join(PROMPT_KEYS)})")
    if not response:
        raise DataError(f"record {index} has no response or answer (one of {', '.join(RESPONSE_KEYS)})")
    if context:
        prompt = f"{prompt}\n\nContext:\n{context}"
    return prompt, response


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def prompt_text(tokenizer: Any, prompt: str) -> str:
    if has_chat_template(tokenizer):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
    return PLAIN_FORMAT.format(prompt=prompt)


def response_text(tokenizer: Any, prompt: str, response: str) -> str:
    """The text that follows `prompt_text` in a full training example, end-of-turn tokens included."""
    if has_chat_template(tokenizer):
        head = prompt_text(tokenizer, prompt)
        full = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}], tokenize=False
        )
        if full.startswith(head):
            return full[len(head) :]
    return response + (tokenizer.eos_token or "")


MIN_PROMPT_TOKENS = 8

# The default recipes (what "New training run", `manage.py train` and the demo use unless the builder sets a field),
# measured by benchmarks/training/bench_generative.py on the demo Q&A Datanet (257 training records, 33 held-out
# questions): SmolLM2 with this recipe (max_length from the data: 80 on a CPU) answers 0.424 exactly (contains 0.424),
# the base model without the adapter 0.000 (0.061), the same-question lookup 0.152 (0.242). lr 3e-3 follows the
# planted-facts benchmark (facts learned there; the old 1e-3 learned none); a 1e-3 comparison here is not yet run.
# max_length 0 is chosen from the data (`auto_max_length`).
LORA_RECIPES: dict[str, dict[str, Any]] = {
    SMOLLM2: {"epochs": 3, "lr": 3e-3, "batch_size": 8, "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.0,
              "max_length": 0},
    TINY: {"epochs": 8, "lr": 2e-2, "batch_size": 8, "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.0,
           "max_length": 0},
}  # fmt: skip


def lora_recipe(base_model: str) -> dict[str, Any]:
    """The default hyperparameters for a base (SmolLM2's for any other causal LM)."""
    return dict(LORA_RECIPES.get(base_model, LORA_RECIPES[SMOLLM2]))


def _token_ids(tokenizer: Any, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_example(tokenizer: Any, prompt: str, response: str, max_length: int) -> tuple[list[int], list[int], bool]:
    """(input_ids, labels, truncated) with the prompt masked. A pair longer than `max_length` is never dropped:
    the end of the prompt goes first (its context, which `record_to_pair` puts after the question, then the
    question's end), re-wrapped in the prompt format so the model sees the same frame as at serving; the answer
    is cut only when it does not fit beside the shortest prompt."""
    head = _token_ids(tokenizer, prompt_text(tokenizer, prompt))
    tail = _token_ids(tokenizer, response_text(tokenizer, prompt, response))
    if len(head) + len(tail) <= max_length:
        return head + tail, [IGNORE] * len(head) + tail, False
    frame = len(_token_ids(tokenizer, prompt_text(tokenizer, "")))
    words = _token_ids(tokenizer, prompt)
    budget = min(len(words), max(MIN_PROMPT_TOKENS, max_length - len(tail) - frame))
    for _ in range(4):  # decoding and re-encoding can differ by a token or two
        head = _token_ids(tokenizer, prompt_text(tokenizer, tokenizer.decode(words[:budget], skip_special_tokens=True)))
        if len(head) + len(tail) <= max_length or budget <= MIN_PROMPT_TOKENS:
            break
        budget = max(MIN_PROMPT_TOKENS, budget - (len(head) + len(tail) - max_length))
    # The answer keeps what the shortened prompt leaves, and at least half the window when a long prompt frame
    # (a chat template's system text) would leave it less.
    keep_tail = min(len(tail), max(max_length - len(head), max_length // 2))
    head = head[: max_length - keep_tail]
    tail = tail[:keep_tail]
    return head + tail, [IGNORE] * len(head) + tail, True


def prompt_ids(tokenizer: Any, prompt: str, budget: int | None) -> tuple[list[int], bool]:
    """(token ids of the wrapped prompt, truncated): a prompt longer than `budget` tokens loses its end (context
    first, as `encode_example` does in training), re-wrapped in the prompt format."""
    head = _token_ids(tokenizer, prompt_text(tokenizer, prompt))
    if budget is None or len(head) <= budget:
        return head, False
    words = _token_ids(tokenizer, prompt)
    keep = max(MIN_PROMPT_TOKENS, budget - (len(head) - len(words)))
    for _ in range(4):  # decoding and re-encoding can differ by a token or two
        head = _token_ids(tokenizer, prompt_text(tokenizer, tokenizer.decode(words[:keep], skip_special_tokens=True)))
        if len(head) <= budget or keep <= MIN_PROMPT_TOKENS:
            break
        keep = max(MIN_PROMPT_TOKENS, keep - (len(head) - budget))
    return head, True


def encode_pair(tokenizer: Any, prompt: str, response: str, max_length: int) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of `encode_example`, for callers that do not count truncations."""
    ids, labels, _ = encode_example(tokenizer, prompt, response, max_length)
    return ids, labels


EVAL_MAX_EXAMPLES = 200
EVAL_MAX_NEW_TOKENS = 64
AUTO_LENGTH_QUANTILE = 0.95
AUTO_LENGTH_CAP = 512
# On a CPU every token of context costs training time: the demo Q&A records run to ~220 tokens with their review,
# and 80 (question, answer and the review's first ~25 tokens) is what bench_generative.py measured beating both
# baselines in minutes rather than an hour. A GPU takes the data's own length up to AUTO_LENGTH_CAP.
AUTO_LENGTH_CAP_CPU = 80


def example_lengths(tokenizer: Any, prompt: str, response: str) -> tuple[int, int]:
    """(prompt tokens in the prompt format, response tokens): the untruncated length of a training example."""
    return (
        len(_token_ids(tokenizer, prompt_text(tokenizer, prompt))),
        len(_token_ids(tokenizer, response_text(tokenizer, prompt, response))),
    )


def auto_max_length(lengths: list[tuple[int, int]], *, frame: int, limit: int, cap: int = AUTO_LENGTH_CAP) -> int:
    """The default max_length from the data: the 95th percentile of the examples' full lengths, at most `cap`, but
    never shorter than the longest answer beside a minimal prompt (the prompt format's `frame` tokens and
    MIN_PROMPT_TOKENS of the prompt, so no answer is cut); a multiple of 8, at most the
    model's position limit. Longer examples keep their answer and lose the end of their prompt (context first)."""
    if not lengths:
        return min(128, limit)
    totals = sorted(h + t for h, t in lengths)
    q = totals[min(len(totals) - 1, math.ceil(AUTO_LENGTH_QUANTILE * len(totals)) - 1)]
    floor = max(t for _, t in lengths) + frame + MIN_PROMPT_TOKENS
    chosen = max(floor, min(q, cap))
    return max(8, min(limit, 8 * math.ceil(chosen / 8)))


def _prompt_length(labels: list[int]) -> int:
    return next((i for i, t in enumerate(labels) if t != IGNORE), len(labels))


def pad_examples(rows: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (ids, labs) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(labs)] = torch.tensor(labs)
        mask[i, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def lora_targets(model: nn.Module) -> list[str] | str:
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    attention = [n for n in ("q_proj", "k_proj", "v_proj", "o_proj") if n in names]
    return attention or "all-linear"


def invisible_token_ids(tokenizer: Any) -> list[int]:
    """Ids of the tokens that decode to nothing visible (special tokens, whitespace, stray bytes): a generation that
    starts with one of them can end as an empty string, which is refused and never charged. Cached per tokenizer."""
    cached = getattr(tokenizer, "_datanets_invisible_ids", None)
    if cached is not None:
        return cached
    vocab = len(tokenizer)
    texts = tokenizer.batch_decode([[i] for i in range(vocab)], skip_special_tokens=True)
    ids = sorted({i for i, t in enumerate(texts) if not t.strip() or t == "\ufffd"} | set(tokenizer.all_special_ids))
    tokenizer._datanets_invisible_ids = ids
    return ids


class FirstTokenVisible:
    """A logits processor: the first generated token must carry visible text. Without it a barely trained model
    (the random-init `tiny` base) often opens with end-of-sequence or whitespace and answers with nothing."""

    def __init__(self, tokenizer: Any, prompt_length: int) -> None:
        self.banned = torch.tensor(invisible_token_ids(tokenizer), dtype=torch.long)
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[1] == self.prompt_length and len(self.banned) < scores.shape[-1]:
            banned = self.banned[self.banned < scores.shape[-1]].to(scores.device)
            scores = scores.index_fill(-1, banned, float("-inf"))
        return scores


def generation_kwargs(tokenizer: Any, prompt_length: int) -> dict[str, Any]:
    """What every generate() call here passes: pad/eos ids and the visible first token."""
    from transformers import LogitsProcessorList

    return {
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "logits_processor": LogitsProcessorList([FirstTokenVisible(tokenizer, prompt_length)]),
    }


def generate_greedy(model: Any, tokenizer: Any, prompt: str, max_new_tokens: int) -> str:
    return generate_batch(model, tokenizer, [prompt], max_new_tokens)[0]


def generate_batch(
    model: Any, tokenizer: Any, prompts: list[str] | list[list[int]], max_new_tokens: int, batch_size: int = 8
) -> list[str]:
    """Greedy answers to `prompts` (texts, wrapped in the prompt format, or token ids already wrapped), left-padded
    in batches; inputs go to the model's device."""
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id
    out: list[str] = []
    for chunk in iter_chunks(list(prompts), batch_size):
        rows = [p if isinstance(p, list) else _token_ids(tokenizer, prompt_text(tokenizer, p)) for p in chunk]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long, device=device)
        mask = torch.zeros((len(rows), width), dtype=torch.long, device=device)
        for i, row in enumerate(rows):
            ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long, device=device)
            mask[i, width - len(row) :] = 1
        generated = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            **generation_kwargs(tokenizer, width),
        )
        out.extend(tokenizer.decode(g[width:], skip_special_tokens=True).strip() for g in generated)
    return out


def normalize_answer(text: str) -> str:
    """Lower case, letters and digits only, single spaces: what exact match and contains compare."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(re.sub(r"[^\w]+", " ", text).split())


def answer_key(question: str, answer: str) -> str:
    """The part of a reference answer that the question does not already say ("Lexapro was taken for Depression."
    asked as "What condition was Lexapro taken for?" -> "depression"): what "contains the answer" looks for."""
    asked = set(normalize_answer(question).split())
    words = normalize_answer(answer).split()
    key = [w for w in words if w not in asked]
    return " ".join(key or words)


def qa_accuracy(questions: list[str], references: list[str], predictions: list[str]) -> dict[str, float]:
    """exact_match: the normalized output equals the normalized reference; contains_answer: the output contains
    the reference's key (`answer_key`) as whole words."""
    n = len(references)
    exact = contains = 0
    for q, ref, pred in zip(questions, references, predictions):
        got = f" {normalize_answer(pred)} "
        exact += got.strip() == normalize_answer(ref)
        contains += f" {answer_key(q, ref)} " in got
    return {"exact_match": exact / n if n else 0.0, "contains_answer": contains / n if n else 0.0}


def lookup_answers(train_questions: list[str], train_answers: list[str], questions: list[str]) -> list[str]:
    """The lookup baseline: for each question, the training split's most frequent answer to the same question
    (first seen on a tie), else the most frequent training answer overall."""
    by_question: dict[str, Counter[str]] = {}
    for q, a in zip(train_questions, train_answers):
        by_question.setdefault(normalize_answer(q), Counter())[a] += 1
    overall = Counter(train_answers).most_common(1)
    fallback = overall[0][0] if overall else ""
    return [
        by_question[key].most_common(1)[0][0] if (key := normalize_answer(q)) in by_question else fallback
        for q in questions
    ]


def _epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    # A generator of its own: the order depends only on (seed, epoch), so a resumed run sees the same batches.
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch + 7))


@dataclass
class _Data:
    pairs: list[tuple[str, str]]
    questions: list[str]
    val_pairs: list[tuple[str, str]]
    val_questions: list[str]
    validation_note: str


class LoRATrainer:
    """LoRA on a causal LM. `base_model`: "smollm2" (default), "tiny", a local folder or .gguf, or a cached hub id."""

    def __init__(self, base_model: str = SMOLLM2, *, device: str | None = None) -> None:
        self.base_spec = base_model
        self.device_pref = device

    def train(
        self,
        *,
        records: list[dict[str, Any]],
        config: TrainConfig,
        output_dir: Path,
        val_records: list[dict[str, Any]] | None = None,
        checkpoint_dir: Path | None = None,
        callbacks: Callbacks | None = None,
        n_samples: int = 3,
    ) -> TrainResult:
        started = time.perf_counter()
        if config.method == "head":  # the dataclass default is the classifier's; LoRA is the only generative one
            config.method = "lora"
        config.validate(methods=GENERATIVE_METHODS)
        callbacks = callbacks or NullCallbacks()
        choice = choose_device(self.device_pref)
        configure_threads(choice)
        pairs = [record_to_pair(r, i) for i, r in enumerate(records)]
        questions = [record_question(r) for r in records]
        if len(pairs) < MIN_RECORDS:
            raise DataError(f"training needs at least {MIN_RECORDS} records; the snapshot has {len(pairs)}")
        validation_note = "validation split"
        if val_records:
            val_pairs = [record_to_pair(r, i) for i, r in enumerate(val_records)]
            val_questions = [record_question(r) for r in val_records]
        elif len(pairs) >= 10:
            order = _epoch_order(len(pairs), config.seed, -1).tolist()
            n_val = max(1, len(pairs) // 5)
            val_pairs = [pairs[i] for i in order[:n_val]]
            val_questions = [questions[i] for i in order[:n_val]]
            pairs = [pairs[i] for i in order[n_val:]]
            questions = [questions[i] for i in order[n_val:]]
            validation_note = "20% held out from the training data"
        else:
            val_pairs, val_questions = pairs, questions
            validation_note = "training data (too few records to hold out a validation split)"

        with tempfile.TemporaryDirectory(prefix="tiny-base-") as tiny_dir:
            if self.base_spec == TINY:
                texts = [t for p, r in pairs for t in (p, r)]
                build_tiny_base(texts, Path(tiny_dir), seed=config.seed)
                local = resolve_local(tiny_dir)
                ref = BaseModelRef(TINY, "tiny-llama (built from the training texts)", local.path, local.sha256)
            else:
                ref = resolve_causal_lm(self.base_spec)
            data = _Data(pairs, questions, val_pairs, val_questions, validation_note)
            return self._train(
                ref, data, config, choice, callbacks, Path(output_dir), checkpoint_dir, n_samples, started,
            )  # fmt: skip

    def _train(
        self,
        ref: BaseModelRef,
        data: _Data,
        config: TrainConfig,
        choice: Any,
        callbacks: Callbacks,
        output_dir: Path,
        checkpoint_dir: Path | None,
        n_samples: int,
        started: float,
    ) -> TrainResult:
        from peft import LoraConfig, get_peft_model

        dtype = torch.bfloat16 if choice.autocast_dtype == torch.bfloat16 else torch.float32
        pairs, val_pairs = data.pairs, data.val_pairs
        base, tokenizer = load_causal_lm(ref, dtype=dtype)
        meter = PhaseMeter(callbacks, "tokenizing", len(pairs) + len(val_pairs), unit="records")
        lengths = [example_lengths(tokenizer, p, r) for p, r in pairs] if not config.max_length else []
        limit = int(getattr(base.config, "max_position_embeddings", 0) or 8192)
        cap = AUTO_LENGTH_CAP_CPU if choice.device.type == "cpu" else AUTO_LENGTH_CAP
        frame = len(_token_ids(tokenizer, prompt_text(tokenizer, "")))
        max_length = config.max_length or auto_max_length(lengths, frame=frame, limit=limit, cap=cap)
        train_rows: list[tuple[list[int], list[int]]] = []
        val_rows: list[tuple[list[int], list[int]]] = []
        n_truncated = 0
        for rows, source in ((train_rows, pairs), (val_rows, val_pairs)):
            for p, r in source:
                ids, labels, truncated = encode_example(tokenizer, p, r, max_length)
                rows.append((ids, labels))
                n_truncated += truncated and rows is train_rows
                meter.advance()
        pad_id = tokenizer.pad_token_id
        max_prompt_tokens = max(_prompt_length(labels) for _, labels in train_rows)

        set_seed(config.seed)
        lora = LoraConfig(
            task_type="CAUSAL_LM",
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=lora_targets(base),
        )
        with warnings.catch_warnings():
            # peft calls a transformers method that was renamed; the warning is theirs, not the caller's.
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            model = get_peft_model(base, lora)
        fingerprint = content_hash(
            {
                "kind": "generative",
                "config": config.to_dict(),
                "base": ref.sha256,
                "data": content_hash([pairs, val_pairs]),
                "max_length": max_length,
            }
        )

        def batches_for_epoch(epoch: int) -> list[dict[str, torch.Tensor]]:
            order = _epoch_order(len(train_rows), config.seed, epoch).tolist()
            return [
                pad_examples([train_rows[i] for i in chunk], pad_id) for chunk in iter_chunks(order, config.batch_size)
            ]

        def loss_fn(m: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            device = next(p for p in m.parameters() if p.requires_grad).device
            return m(**{k: v.to(device) for k, v in batch.items()}).loss

        def evaluate(m: nn.Module) -> dict[str, Any]:
            m.eval()
            device = next(m.parameters()).device
            total, tokens = 0.0, 0
            with torch.no_grad():
                for chunk in iter_chunks(val_rows, max(1, config.batch_size)):
                    batch = pad_examples(chunk, pad_id)
                    n = int((batch["labels"][:, 1:] != IGNORE).sum())
                    loss = m(**{k: v.to(device) for k, v in batch.items()}).loss
                    total += float(loss.float()) * n
                    tokens += n
            val_loss = total / max(tokens, 1)
            return {"val_loss": val_loss, "perplexity": math.exp(min(val_loss, 50.0)), "val_tokens": tokens}

        spec = LoopSpec(
            model=model,
            batches_for_epoch=batches_for_epoch,
            loss_fn=loss_fn,
            batch_examples=lambda batch: int(batch["input_ids"].shape[0]),
            fingerprint=fingerprint,
            evaluate=evaluate,
        )
        outcome = run_loop(spec, config=config, choice=choice, callbacks=callbacks, checkpoint_dir=checkpoint_dir)
        model = outcome.model
        with torch.no_grad():
            metrics = evaluate(model)
            model.eval()
            metrics.update(self._answer_scores(model, tokenizer, data, val_rows, n_samples, callbacks))
        metrics["validation_source"] = data.validation_note
        # What the run did rather than how the model scores: the card shows it apart from the validation metrics.
        metrics["training"] = {
            "examples_per_s": outcome.examples_per_s,
            "n_train_examples": len(train_rows),
            "n_truncated": n_truncated,
            "max_length": max_length,
            "max_length_source": "set"
            if config.max_length
            else f"from the data (95th percentile of lengths, at most {cap} on {choice.device.type})",
        }
        if outcome.eval_history:
            metrics["eval_history"] = [[s, m["val_loss"]] for s, m in outcome.eval_history]

        result = TrainResult(
            kind="generative",
            method=config.method,
            metrics=metrics,
            artifact_dir=output_dir,
            artifact_size_bytes=0,
            loss_history=outcome.loss_history,
            library_versions=library_versions(),
            base_model_id=ref.model_id,
            base_model_sha256=ref.sha256,
            seeds={"seed": config.seed},
            config=config.to_dict(),
            device=choice.name,
            precision=choice.precision,
            steps=outcome.steps,
            train_examples=len(train_rows),
            resumed_from_step=outcome.resumed_from_step,
            examples_per_s=outcome.examples_per_s,
        )
        if outcome.is_main_process:
            with atomic_output_dir(output_dir) as scratch:
                model.peft_config["default"].base_model_name_or_path = ref.model_id
                model.save_pretrained(scratch, save_embedding_layers=False)
                tokenizer.save_pretrained(scratch)
                base_info = ref.to_dict()
                if ref.spec == TINY:
                    shutil.copytree(ref.path, scratch / "base_model")
                    base_info["path"] = "base_model"
                write_json(
                    scratch / "generative.json",
                    {
                        "format": ARTIFACT_FORMAT,
                        "version": 1,
                        "base": base_info,
                        "prompt_format": "chat_template" if has_chat_template(tokenizer) else "plain",
                        "max_length": max_length,
                        # Serving shortens longer prompts the same way, so answers match what the card scored.
                        "max_prompt_tokens": max_prompt_tokens,
                    },
                )
                result.duration_s = time.perf_counter() - started
                result.artifact_size_bytes = dir_size(scratch)
                write_json(scratch / "training_info.json", {**result.to_dict(), "artifact_dir": None})
            clear_checkpoints(checkpoint_dir)
        return result

    @staticmethod
    def _answer_scores(
        model: Any,
        tokenizer: Any,
        data: _Data,
        val_rows: list[tuple[list[int], list[int]]],
        n_samples: int,
        callbacks: Callbacks,
    ) -> dict[str, Any]:
        """Greedy answers to the validation questions by this model and by the base model without the adapter,
        and the lookup baseline, each scored by exact match and contains-the-answer (`qa_accuracy`)."""
        val = data.val_pairs[:EVAL_MAX_EXAMPLES]
        questions = data.val_questions[:EVAL_MAX_EXAMPLES]
        # The prompt side of each validation example as training encoded it (context shortened to max_length).
        prompts = [ids[: _prompt_length(labels)] for ids, labels in val_rows[:EVAL_MAX_EXAMPLES]]
        references = [r for _, r in val]
        answer_tokens = max((len(_token_ids(tokenizer, r)) for _, r in data.pairs), default=16)
        max_new = max(8, min(EVAL_MAX_NEW_TOKENS, answer_tokens + 4))
        meter = PhaseMeter(callbacks, "answering validation questions", 2 * len(prompts), unit="answers")
        ours: list[str] = []
        plain: list[str] = []
        for chunk in iter_chunks(list(range(len(prompts))), 8):
            batch = [prompts[i] for i in chunk]
            ours.extend(generate_batch(model, tokenizer, batch, max_new))
            meter.advance(len(chunk))
            with model.disable_adapter():
                plain.extend(generate_batch(model, tokenizer, batch, max_new))
            meter.advance(len(chunk))
        lookup = lookup_answers(data.questions, [r for _, r in data.pairs], questions)
        scores = qa_accuracy(questions, references, ours)
        return {
            **scores,
            "n_answered": len(prompts),
            "baselines": {
                "base_model": qa_accuracy(questions, references, plain),
                "lookup": qa_accuracy(questions, references, lookup),
            },
            "samples": [
                {"prompt": p, "reference": r, "generated": g, "base_model": b}
                for (p, r), g, b in list(zip(val, ours, plain))[:n_samples]
            ],
        }
