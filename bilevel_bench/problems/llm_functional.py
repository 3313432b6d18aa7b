"""A causal LM as a function of flat parameter vectors.

The bilevel variables are single flat tensors. :class:`FlatLM` maps named groups of a model's
parameters (e.g. ``"x"`` = LoRA adapters, ``"y"`` = output head) to such vectors and evaluates the
model with ``torch.func.functional_call`` on *views* into them, so gradients, Hessian-vector and
Jacobian-vector products with respect to the flat vectors flow through autograd (and through the
counted oracles). Every other parameter is frozen (``requires_grad=False``).

Sequence scores: for a batch of token sequences with a 0/1 ``loss_mask`` marking response tokens,

    logp_i = sum_t mask_{i,t} log p_theta(s_{i,t} | s_{i,<t}),    n_i = sum_t mask_{i,t},

from which the problems build SFT losses (-logp_i / n_i) and DPO margins. Greedy decoding for the
task metrics runs the same functional forward pass, with a key-value cache.

LoRA (Hu et al., arXiv:2106.09685) adapters are injected with ``peft.inject_adapter_in_model``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn


def add_lora(
    model: nn.Module, rank: int, alpha: float, targets: Sequence[str], seed: int
) -> list[str]:
    """Inject LoRA adapters (rank ``rank``, scale ``alpha / rank``) into the ``targets`` linear
    layers; returns the adapter parameter names. B = 0, so the model is unchanged; A is drawn
    from ``seed`` (independent of the global RNG)."""
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from bilevel_bench.problems.llm_models import LLM_EXTRA_HINT

        raise ImportError(f"LoRA adapters need peft: {LLM_EXTRA_HINT}") from exc
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=list(targets))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        inject_adapter_in_model(config, model)
    return [name for name, _ in model.named_parameters() if "lora_" in name]


def untie_output_head(model: nn.Module) -> None:
    """Give the output head its own weight when it is tied to the input embedding."""
    head = model.get_output_embeddings()
    if head.weight is model.get_input_embeddings().weight:
        head.weight = nn.Parameter(head.weight.detach().clone())
    model.config.tie_word_embeddings = False


def head_names(model: nn.Module) -> list[str]:
    """Parameter names of the output head."""
    head = set(map(id, model.get_output_embeddings().parameters()))
    return [n for n, p in model.named_parameters() if id(p) in head]


def last_blocks(model: nn.Module, k: int) -> list[str]:
    """Parameter names of the last ``k`` decoder blocks and the final norm (Llama-like models)."""
    n_layers = model.config.num_hidden_layers
    prefixes = tuple(f"model.layers.{i}." for i in range(n_layers - k, n_layers))
    return [n for n, _ in model.named_parameters()
            if n.startswith(prefixes) or n.startswith("model.norm.")]


class FlatLM:
    """Model parameters in named groups, each exposed as one flat vector.

    ``groups`` maps a variable name (``"x"``, ``"y"``) to parameter names of ``model``.
    """

    def __init__(self, model: nn.Module, groups: Mapping[str, Sequence[str]]) -> None:
        self.model = model
        params = dict(model.named_parameters())
        model.requires_grad_(False)
        self.groups: dict[str, list[tuple[str, torch.Size, int]]] = {}
        for var, names in groups.items():
            missing = [n for n in names if n not in params]
            if missing or not names:
                raise ValueError(f"group {var!r}: unknown or no parameters {missing[:3]}")
            self.groups[var] = [(n, params[n].shape, params[n].numel()) for n in names]
        self.head = model.get_output_embeddings()
        self.head_prefix = next(n for n, m in model.named_modules() if m is self.head) + "."
        self.body_prefix = model.base_model_prefix + "."
        self.body = getattr(model, model.base_model_prefix)

    def size(self, var: str) -> int:
        return sum(numel for _, _, numel in self.groups[var])

    def initial(self, var: str) -> torch.Tensor:
        """The group's current parameter values as one flat vector (a copy)."""
        params = dict(self.model.named_parameters())
        return torch.cat([params[n].detach().reshape(-1) for n, _, _ in self.groups[var]]).clone()

    def views(self, flats: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Parameter name -> view into the flat vector of its group."""
        out: dict[str, torch.Tensor] = {}
        for var, flat in flats.items():
            offset = 0
            for name, shape, numel in self.groups[var]:
                out[name] = flat[offset:offset + numel].view(shape)
                offset += numel
        return out

    def _split(self, flats: Mapping[str, torch.Tensor]) -> tuple[dict, dict]:
        """Views split into those of the decoder body and those of the output head."""
        body, head = {}, {}
        for name, view in self.views(flats).items():
            if name.startswith(self.head_prefix):
                head[name[len(self.head_prefix):]] = view
            elif name.startswith(self.body_prefix):
                body[name[len(self.body_prefix):]] = view
            else:
                raise ValueError(f"parameter {name!r} is neither in the body nor in the head")
        return body, head

    def _forward(
        self, flats: Mapping[str, torch.Tensor], input_ids: torch.Tensor,
        attention_mask: torch.Tensor, position_ids: torch.Tensor, past: Any = None,
        use_cache: bool = False,
    ) -> Any:
        body, _ = self._split(flats)
        return torch.func.functional_call(
            self.body, body, args=(),
            kwargs=dict(input_ids=input_ids, attention_mask=attention_mask,
                        position_ids=position_ids, past_key_values=past, use_cache=use_cache),
        )

    def hidden(
        self, flats: Mapping[str, torch.Tensor], input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
    ) -> torch.Tensor:
        """Last hidden states (B, L, H); positions follow the attention mask (left padding)."""
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        return self._forward(flats, input_ids, attention_mask, position_ids).last_hidden_state

    def head_logits(self, flats: Mapping[str, torch.Tensor], hidden: torch.Tensor) -> torch.Tensor:
        """Output logits of hidden states (any leading shape)."""
        _, head = self._split(flats)
        return torch.func.functional_call(self.head, head, (hidden,))

    def sequence_logprobs(
        self, flats: Mapping[str, torch.Tensor], input_ids: torch.Tensor,
        attention_mask: torch.Tensor, loss_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(logp_i, n_i): summed log-probabilities of the masked tokens and their count.
        The head is applied to the masked positions only (the vocabulary can be large)."""
        hidden = self.hidden(flats, input_ids, attention_mask)[:, :-1]
        mask = loss_mask[:, 1:].bool()
        logits = self.head_logits(flats, hidden[mask])
        nll = nn.functional.cross_entropy(logits, input_ids[:, 1:][mask], reduction="none")
        rows = torch.arange(mask.shape[0], device=mask.device)[:, None].expand_as(mask)[mask]
        total = torch.zeros(mask.shape[0], dtype=nll.dtype, device=nll.device)
        total = total.index_add(0, rows, nll)
        return -total, mask.sum(-1).to(nll.dtype)

    def sft_losses(self, flats: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
                   ) -> torch.Tensor:
        """Per-sequence SFT loss: mean negative log-likelihood of the response tokens."""
        logp, count = self.sequence_logprobs(
            flats, batch["input_ids"], batch["attention_mask"], batch["loss_mask"])
        return -logp / count.clamp(min=1)

    @torch.no_grad()
    def greedy(
        self, flats: Mapping[str, torch.Tensor], prompts: Sequence[Sequence[int]],
        max_new_tokens: int, eos_id: int, pad_id: int, batch_size: int = 32,
    ) -> list[list[int]]:
        """Greedy continuations of token prompts (left-padded batches), cut at ``eos_id``."""
        flats = {k: v.detach() for k, v in flats.items()}
        device = next(iter(flats.values())).device
        outputs: list[list[int]] = []
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start:start + batch_size]
            width = max(len(p) for p in chunk)
            ids = torch.full((len(chunk), width), pad_id, dtype=torch.long, device=device)
            mask = torch.zeros_like(ids)
            for i, p in enumerate(chunk):
                ids[i, width - len(p):] = torch.as_tensor(p, device=device)
                mask[i, width - len(p):] = 1
            done = torch.zeros(len(chunk), dtype=torch.bool, device=device)
            out = self._forward(flats, ids, mask, (mask.cumsum(-1) - 1).clamp(min=0),
                                use_cache=True)
            new = []
            for _ in range(max_new_tokens):
                nxt = self.head_logits(flats, out.last_hidden_state[:, -1]).argmax(-1)
                nxt = torch.where(done, torch.full_like(nxt, pad_id), nxt)
                new.append(nxt)
                if bool((done | (nxt == eos_id)).all()) or len(new) == max_new_tokens:
                    break
                mask = torch.cat([mask, (~done).long()[:, None]], 1)
                done |= nxt == eos_id
                out = self._forward(flats, nxt[:, None], mask, mask.sum(-1, keepdim=True) - 1,
                                    past=out.past_key_values, use_cache=True)
            gen = torch.stack(new, 1).tolist() if new else [[] for _ in chunk]
            for row in gen:
                cut = row.index(eos_id) if eos_id in row else len(row)
                outputs.append(row[:cut])
        return outputs


def kaiming_like(shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) draws (the default init of ``nn.Linear`` weights)."""
    bound = 1.0 / math.sqrt(shape[-1])
    return (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1) * bound


def redraw_lora(
    flat: torch.Tensor, lm: FlatLM, var: str, generator: torch.Generator
) -> torch.Tensor:
    """A copy of ``flat`` whose LoRA ``A`` matrices are redrawn from ``generator`` (B unchanged):
    seeded adapter initialisations that leave the model function unchanged when B = 0."""
    out = flat.clone()
    offset = 0
    for name, shape, numel in lm.groups[var]:
        if "lora_A" in name:
            draw = kaiming_like(shape, generator).reshape(-1)
            out[offset:offset + numel] = draw.to(dtype=out.dtype, device=out.device)
        offset += numel
    return out
