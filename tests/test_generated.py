"""Generated data are the same on every CPU, BLAS code path and thread count.

One machine cannot be every CPU, but it can run the code paths that differ between CPUs: ATen's
kernels for another instruction set (``ATEN_CPU_CAPABILITY``), MKL's conditional numerical
reproducibility mode and instruction set (``MKL_CBWR``, ``MKL_ENABLE_INSTRUCTIONS``) and other
thread counts. Before the data were built with :mod:`bilevel_bench.generated`, two of these
three configurations gave quadratic-small or quadratic-ill-conditioned other fingerprints.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest
import torch

from bilevel_bench import generated
from bilevel_bench.generated import FixedGrid
from bilevel_bench.problem import FingerprintError
from bilevel_bench.registry import ProblemEntry, get_problem, problems

#: instances that pin the fingerprints of generated data
PINNED = sorted(name for name, entry in problems().items() if entry.instance.fingerprints)

#: code paths that differ between CPUs, reproduced on this one
CONFIGURATIONS = {
    "generic kernels, SSE4.2 MKL, 1 thread": {
        "ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    "2 threads": {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"},
    "MKL compatible mode": {"MKL_CBWR": "COMPATIBLE", "OMP_NUM_THREADS": "1",
                            "MKL_NUM_THREADS": "1"},
}

BUILD = """
import json, sys
from bilevel_bench.registry import get_problem
out = {}
for name in sys.argv[1:]:
    problem = get_problem(name).family(**get_problem(name).instance.params)  # no pin check
    out[name] = problem.data_fingerprints()
print(json.dumps(out))
"""


def test_the_quadratic_instances_pin_their_data():
    assert {"quadratic-small", "quadratic-ill-conditioned", "quadratic-benchopt"} <= set(PINNED)


@pytest.mark.parametrize("configuration", sorted(CONFIGURATIONS))
def test_generated_data_are_the_same_on_every_code_path(configuration):
    env = {**os.environ, **CONFIGURATIONS[configuration]}
    done = subprocess.run([sys.executable, "-c", BUILD, *PINNED], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    built = json.loads(done.stdout.splitlines()[-1])
    for name in PINNED:
        for key, pinned in get_problem(name).instance.fingerprints.items():
            assert built[name][key] == pinned, (name, configuration)


@pytest.mark.parametrize("name", [n for n in PINNED if n.startswith("quadratic")])
def test_rounding_margin_is_far_above_the_differences_between_machines(name):
    """Every entry rounded to the grid lies at least 1e-12 from a rounding boundary, while the
    float64 results of LAPACK/BLAS differ by about 1e-15 between code paths: every machine
    rounds to the same grid point."""
    assert get_problem(name).make(seed=0).grid_margin > 1e-12


def test_a_fingerprint_other_than_the_pinned_one_is_an_error_naming_both():
    entry = get_problem("quadratic-small")
    real = entry.instance.fingerprints["generated"]
    forged = dataclasses.replace(entry.instance, fingerprints={"generated": "0" * 64})
    with pytest.raises(FingerprintError) as caught:
        ProblemEntry(entry.name, entry.family, forged, entry.source).make(seed=0)
    message = str(caught.value)
    assert "quadratic-small" in message and real in message and "0" * 64 in message


def test_normal_draws_are_exact_and_standard():
    gen = torch.Generator().manual_seed(0)
    draws = generated.normal(gen, 200_000)
    assert draws.dtype == torch.float64
    assert torch.equal(draws * 2**generated.UNIFORM_BITS,
                       torch.round(draws * 2**generated.UNIFORM_BITS))  # on the grid: exact
    assert abs(float(draws.mean())) < 0.01 and abs(float(draws.var()) - 1) < 0.01
    assert float(draws.abs().max()) <= 6
    again = generated.normal(torch.Generator().manual_seed(0), 200_000)
    assert torch.equal(draws, again)


def test_fixed_grid_rounds_and_measures_its_margin():
    grid = FixedGrid(bits=2)  # grid 0.25, boundaries at odd multiples of 0.125
    out = grid(torch.tensor([0.3, -0.1, 1.0], dtype=torch.float64))
    assert out.tolist() == [0.25, -0.0, 1.0]
    assert grid.margin == pytest.approx(0.025)  # -0.1 is 0.025 from the boundary -0.125
    sym = grid.symmetric(torch.tensor([[0.0, 0.3], [0.2, 0.0]], dtype=torch.float64))
    assert torch.equal(sym, sym.T)
