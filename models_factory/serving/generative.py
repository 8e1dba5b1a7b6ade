"""Serves many LoRA adapters on one loaded copy of each base model (as OpenLoRA does).

Bases are keyed by the SHA-256 of their weight files, so adapters trained on the same base share one copy in
memory. Adapters load on first use and are kept in an LRU cache of `max_adapters` per base; the least recently
used one is deleted from the model when a new one needs room. One lock serialises generation per server because
the active adapter is model-wide state.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from models_factory.trainers.base_models import (
    SMOLLM2,
    TINY,
    BaseModelRef,
    load_causal_lm,
    resolve_causal_lm,
    resolve_local,
)
from models_factory.trainers.device import choose_device
from models_factory.trainers.errors import BaseModelError, InputError
from models_factory.trainers.generative import ARTIFACT_FORMAT, generation_kwargs, prompt_ids

MAX_NEW_TOKENS_LIMIT = 1024
MAX_TEMPERATURE = 2.0


def artifact_tokenizer(artifact_dir: Path | str) -> Any:
    """The tokenizer saved with a generative artifact (offline): how attribution reads its outputs as tokens."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(artifact_dir), local_files_only=True)


@dataclass
class _Base:
    ref: BaseModelRef
    model: Any  # a PeftModel once the first adapter is loaded, else the plain base
    tokenizer: Any
    adapters: OrderedDict[str, str] = field(default_factory=OrderedDict)  # adapter name -> folder, oldest first


class GenerativeServer:
    def __init__(
        self, *, max_adapters: int = 8, max_input_tokens: int | None = None, device: str | None = None
    ) -> None:
        if max_adapters < 1:
            raise ValueError("max_adapters must be at least 1")
        self.max_adapters = max_adapters
        self.max_input_tokens = max_input_tokens
        self.choice = choose_device(device)
        self._bases: dict[str, _Base] = {}
        self._lock = threading.Lock()
        self.base_loads = 0
        self.adapter_loads = 0
        self.adapter_evictions = 0
        self.last_switch_s = 0.0

    def loaded_adapters(self) -> dict[str, list[str]]:
        return {key: list(base.adapters.values()) for key, base in self._bases.items()}

    def generate(
        self,
        adapter_dir: Path | str,
        prompt: str,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> tuple[str, int, int]:
        """(text, n_prompt_tokens, n_output_tokens). temperature 0 is greedy; seed makes sampling repeatable."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError("the prompt is empty; send some text")
        if not 1 <= int(max_new_tokens) <= MAX_NEW_TOKENS_LIMIT:
            raise InputError(f"max_new_tokens must be between 1 and {MAX_NEW_TOKENS_LIMIT}, not {max_new_tokens}")
        if not 0.0 <= float(temperature) <= MAX_TEMPERATURE:
            raise InputError(f"temperature must be between 0 and {MAX_TEMPERATURE}, not {temperature}")
        with self._lock:
            base = self._activate(Path(adapter_dir))
            tokenizer, model = base.tokenizer, base.model
            budget = self._read_meta(Path(adapter_dir)).get("max_prompt_tokens")
            row, _ = prompt_ids(tokenizer, prompt, int(budget) if budget else None)
            ids = torch.tensor([row], dtype=torch.long)
            n_prompt = int(ids.shape[1])
            limit = self._input_limit(model)
            if n_prompt + max_new_tokens > limit:
                raise InputError(
                    f"the input is too long: {n_prompt} prompt tokens + {max_new_tokens} new tokens exceeds the "
                    f"model's limit of {limit}; shorten the prompt or lower max_new_tokens"
                )
            device = self.choice.device
            sampling: dict[str, Any] = {"do_sample": False}
            if temperature > 0:
                torch.manual_seed(seed)
                sampling = {"do_sample": True, "temperature": float(temperature), "top_k": 0, "top_p": 1.0}
            with torch.inference_mode():
                out = model.generate(
                    input_ids=ids.to(device),
                    attention_mask=torch.ones_like(ids, device=device),
                    max_new_tokens=int(max_new_tokens),
                    **generation_kwargs(tokenizer, n_prompt),
                    **sampling,
                )
            new = out[0, n_prompt:]
            text = tokenizer.decode(new, skip_special_tokens=True).strip()
            return text, n_prompt, int(new.shape[0])

    def _input_limit(self, model: Any) -> int:
        positions = int(getattr(model.config, "max_position_embeddings", 2048))
        return min(positions, self.max_input_tokens) if self.max_input_tokens else positions

    def _activate(self, adapter_dir: Path) -> _Base:
        meta = self._read_meta(adapter_dir)
        ref = self._base_ref(adapter_dir, meta["base"])
        base = self._bases.get(ref.sha256)
        if base is None:
            model, tokenizer = load_causal_lm(ref, dtype=self._dtype())
            model.to(self.choice.device).eval()
            base = _Base(ref=ref, model=model, tokenizer=tokenizer)
            self._bases[ref.sha256] = base
            self.base_loads += 1
        name = "a" + hashlib.sha256(str(adapter_dir.resolve()).encode()).hexdigest()[:16]
        started = time.perf_counter()
        if name in base.adapters:
            base.adapters.move_to_end(name)
        else:
            self._load_adapter(base, name, adapter_dir)
        if base.model.active_adapter != name:
            base.model.set_adapter(name)
        base.model.eval()
        self.last_switch_s = time.perf_counter() - started
        return base

    def _load_adapter(self, base: _Base, name: str, adapter_dir: Path) -> None:
        from peft import PeftModel

        try:
            if isinstance(base.model, PeftModel):
                base.model.load_adapter(str(adapter_dir), adapter_name=name)
            else:
                base.model = PeftModel.from_pretrained(base.model, str(adapter_dir), adapter_name=name)
        except Exception as exc:  # peft raises many types for a broken adapter folder
            raise BaseModelError(f"could not load the adapter in {adapter_dir}: {exc}") from exc
        base.model.to(self.choice.device)
        base.adapters[name] = str(adapter_dir)
        self.adapter_loads += 1
        while len(base.adapters) > self.max_adapters:
            oldest, _ = base.adapters.popitem(last=False)
            base.model.set_adapter(name)  # peft will not delete the active adapter
            base.model.delete_adapter(oldest)
            self.adapter_evictions += 1

    def _dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.choice.autocast_dtype == torch.bfloat16 else torch.float32

    @staticmethod
    def _read_meta(adapter_dir: Path) -> dict[str, Any]:
        path = adapter_dir / "generative.json"
        if not path.is_file():
            raise BaseModelError(f"{adapter_dir} is not a LoRA adapter artifact: it has no generative.json")
        meta = json.loads(path.read_text(encoding="utf-8"))
        if meta.get("format") != ARTIFACT_FORMAT:
            raise BaseModelError(f"{adapter_dir} is not a LoRA adapter artifact (format {meta.get('format')!r})")
        return meta

    @staticmethod
    def _base_ref(adapter_dir: Path, info: dict[str, Any]) -> BaseModelRef:
        if info["spec"] == TINY:
            local = resolve_local(str(adapter_dir / info["path"]))
            ref = BaseModelRef(TINY, info["model_id"], local.path, local.sha256)
        elif info["spec"] == SMOLLM2:
            ref = resolve_causal_lm(SMOLLM2)
        elif info.get("gguf_file"):
            ref = resolve_local(str(Path(info["path"]) / info["gguf_file"]))
        elif Path(info["path"]).is_dir():
            ref = resolve_local(info["path"])
        else:
            ref = resolve_causal_lm(info["spec"])
        if ref.sha256 != info["sha256"]:
            raise BaseModelError(
                f"the base model {info['model_id']!r} on this machine (sha256 {ref.sha256[:12]}) is not the one the "
                f"adapter was trained on (sha256 {info['sha256'][:12]})"
            )
        return ref
