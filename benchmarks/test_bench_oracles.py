"""Micro-benchmarks of the counted oracles: HVP and JVP cost relative to a gradient.

Not part of the default test run (``--benchmark-skip`` in the project's addopts). Run with::

    pytest benchmarks/test_bench_*.py -o addopts="" --benchmark-only --benchmark-autosave

On each quadratic instance (``quadratic-small``, ``quadratic-benchopt``), for the LL objective g:

* ``grad``: one first-order pass, nabla_x g and nabla_y g (``Oracles.grad``);
* ``hvp`` / ``jvp``: a fresh ``Oracles.hvp_operator`` (a gradient pass with ``create_graph``)
  plus one product nabla^2_yy g . v, resp. nabla^2_xy g . v: the cost of one product from scratch;
* ``hvp_product`` / ``jvp_product``: one more product on an existing operator: the marginal cost
  inside a loop such as conjugate gradient.

The ratios to ``grad`` (medians) are printed at the end and stored in each benchmark's
``extra_info["relative_to_grad"]`` in the saved JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch

from bilevel_bench import registry
from bilevel_bench.oracles import Oracles
from bilevel_bench.provenance import pin_threads

pin_threads(1)

INSTANCES = ["quadratic-small", "quadratic-benchopt"]
Point = tuple[str, Oracles, torch.Tensor, torch.Tensor, torch.Tensor, Callable]
MEDIANS: dict[tuple[str, str], float] = {}


@pytest.fixture(scope="module", params=INSTANCES)
def point(request: pytest.FixtureRequest) -> Point:
    """An instance's oracles at its initial point, a direction v, and a ready HVP operator."""
    problem = registry.get_problem(request.param).make(seed=0)
    generator = torch.Generator().manual_seed(0)
    x, y = problem.init(generator)
    oracles = Oracles(problem)
    v = torch.randn(y.shape, generator=generator, dtype=y.dtype).to(y.device)
    _, product = oracles.hvp_operator("g", x, y)
    return request.param, oracles, x, y, v, product


@pytest.fixture(scope="module", autouse=True)
def ratio_report(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print the median cost of each operation relative to a gradient, after the module."""
    yield
    plugins = request.config.pluginmanager
    with plugins.get_plugin("capturemanager").global_and_fixture_disabled():
        plugins.get_plugin("terminalreporter").ensure_newline()
        for (instance, op), median in sorted(MEDIANS.items()):
            grad = MEDIANS.get((instance, "grad"))
            if grad and op != "grad":
                plugins.get_plugin("terminalreporter").write_line(
                    f"{instance}: {op} / grad = {median / grad:.2f}")


def _measure(benchmark, point: Point, op: str, fn: Callable[[], object]) -> None:
    instance = point[0]
    benchmark.group = f"oracles {instance}"
    benchmark.extra_info["instance"] = instance
    benchmark(fn)
    MEDIANS[instance, op] = benchmark.stats.stats.median
    grad = MEDIANS.get((instance, "grad"))
    if grad:
        benchmark.extra_info["relative_to_grad"] = MEDIANS[instance, op] / grad


def test_grad(benchmark, point: Point) -> None:
    _, oracles, x, y, _, _ = point
    _measure(benchmark, point, "grad", lambda: oracles.grad("g", x, y))


def test_hvp(benchmark, point: Point) -> None:
    _, oracles, x, y, v, _ = point
    _measure(benchmark, point, "hvp", lambda: oracles.hvp_operator("g", x, y)[1](v, "y"))


def test_jvp(benchmark, point: Point) -> None:
    _, oracles, x, y, v, _ = point
    _measure(benchmark, point, "jvp", lambda: oracles.hvp_operator("g", x, y)[1](v, "x"))


def test_hvp_product(benchmark, point: Point) -> None:
    product, v = point[5], point[4]
    _measure(benchmark, point, "hvp_product", lambda: product(v, "y"))


def test_jvp_product(benchmark, point: Point) -> None:
    product, v = point[5], point[4]
    _measure(benchmark, point, "jvp_product", lambda: product(v, "x"))
