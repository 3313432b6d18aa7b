"""Counted oracles: exact derivatives, and counts that do not depend on the solver's honesty."""

from __future__ import annotations

import pytest
import torch
import torch.func

from bilevel_bench.oracles import Oracles
from bilevel_bench.registry import get_problem


@pytest.fixture
def quad():
    problem = get_problem("quadratic-small").make(seed=0)
    x, y = problem.init(torch.Generator().manual_seed(0))
    y = torch.randn(problem.y_shape, dtype=problem.dtype,
                    generator=torch.Generator().manual_seed(1))
    return problem, Oracles(problem), x, y


def counts(oracles, *keys):
    return tuple(oracles.counter.counts[k] for k in keys)


def test_gradients_match_closed_form(quad):
    problem, oracles, x, y = quad
    mm = problem.mean_matrices()
    gx, gy = oracles.grad("g", x, y)
    torch.testing.assert_close(gy, mm["A"] @ y + mm["C"].T @ x + mm["a"])
    torch.testing.assert_close(gx, problem.B @ x + mm["C"] @ y + mm["b"])
    assert counts(oracles, "g_value", "g_grad", "g_hvp", "f_value") == (1, 1, 0, 0)


def test_hvp_and_jvp_are_exact_and_counted(quad):
    problem, oracles, x, y = quad
    mm = problem.mean_matrices()
    v = torch.randn(problem.y_shape, dtype=problem.dtype)
    _, product = oracles.hvp_operator("g", x, y)
    for _ in range(3):
        torch.testing.assert_close(product(v, "y"), mm["A"] @ v)
    torch.testing.assert_close(product(v, "x"), mm["C"] @ v)
    assert counts(oracles, "g_value", "g_grad", "g_hvp", "g_jvp") == (1, 1, 3, 1)


def test_direct_autograd_is_counted(quad):
    """A solver that never uses the helpers is counted where the work happens."""
    problem, oracles, x, y = quad
    xr, yr = x.clone().requires_grad_(), y.clone().requires_grad_()
    oracles.g(xr, yr).backward()
    assert counts(oracles, "g_value", "g_grad") == (1, 1)
    (gy,) = torch.autograd.grad(oracles.g(xr, yr), yr, create_graph=True)
    v = torch.ones_like(gy)
    (hv,) = torch.autograd.grad(gy, yr, v)
    torch.testing.assert_close(hv, problem.mean_matrices()["A"] @ v)
    assert counts(oracles, "g_value", "g_grad", "g_hvp", "g_jvp") == (2, 2, 1, 0)


def test_penalised_objective_counts_both_levels(quad):
    _, oracles, x, y = quad
    yr = y.clone().requires_grad_()
    torch.autograd.grad(oracles.f(x, yr) + 10.0 * oracles.g(x, yr), yr)
    assert counts(oracles, "f_value", "f_grad", "g_value", "g_grad") == (1, 1, 1, 1)


def test_torch_func_grad_is_counted(quad):
    problem, oracles, x, y = quad
    gy = torch.func.grad(lambda t: oracles.g(x, t))(y)
    torch.testing.assert_close(gy, oracles.grad("g", x, y, wrt="y")[1])
    assert counts(oracles, "g_value", "g_grad") == (2, 2)


def test_minibatch_weights_samples_and_unbiasedness(quad):
    problem, oracles, x, y = quad
    n = problem.n_samples["g"]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    batches = perm.reshape(8, n // 8)
    means = torch.stack([oracles.g(x, y, b) for b in batches]).mean()
    torch.testing.assert_close(means, problem.g(x, y))  # batch means over a partition
    assert oracles.counter.counts["g_value"] == pytest.approx(1.0)  # 8 x 1/8
    assert oracles.counter.samples == n
    batch = oracles.sample_batch("g", 32, torch.Generator().manual_seed(0))
    assert batch.shape == (32,) and len(set(batch.tolist())) == 32
    assert oracles.sample_batch("g", n, torch.Generator()) is None  # full batch


def test_values_without_grad_and_paused_counting(quad):
    _, oracles, x, y = quad
    with torch.no_grad():
        oracles.f(x, y)
    with oracles.counter.paused():
        oracles.grad("f", x, y)
    assert counts(oracles, "f_value", "f_grad") == (1, 0)
    assert oracles.counter.snapshot()["oracle_cost"] == 1


def test_deterministic_problem_has_no_batches():
    problem = get_problem("vpbgd-toy").make()
    oracles = Oracles(problem)
    assert oracles.sample_batch("g", 4, torch.Generator()) is None
    with pytest.raises(ValueError, match="no coupled constraints"):
        oracles.h(*problem.init(torch.Generator()))


def test_minibatches_of_an_epoch_partition_the_samples_and_are_seeded(quad):
    """Sampling without replacement within an epoch: one permutation per epoch, O(b) a draw."""
    problem, oracles, _, _ = quad
    n, b = problem.n_samples["g"], 32
    gen = torch.Generator().manual_seed(3)
    epoch = [oracles.sample_batch("g", b, gen) for _ in range(n // b)]
    assert all(batch.shape == (b,) for batch in epoch)
    assert sorted(torch.cat(epoch).tolist()) == list(range(n))  # disjoint and covering
    next_epoch = [oracles.sample_batch("g", b, gen) for _ in range(n // b)]
    assert sorted(torch.cat(next_epoch).tolist()) == list(range(n))
    assert not torch.equal(torch.cat(epoch), torch.cat(next_epoch))  # a fresh permutation
    # seeded: the same generator seed on fresh oracles gives the same batches
    again = Oracles(problem)
    gen = torch.Generator().manual_seed(3)
    replay = [again.sample_batch("g", b, gen) for _ in range(2 * (n // b))]
    assert all(torch.equal(u, v) for u, v in zip(epoch + next_epoch, replay, strict=True))
    # the f level keeps its own epoch: interleaving it does not disturb the g partition
    gen = torch.Generator().manual_seed(4)
    mixed = []
    for _ in range(n // b):
        mixed.append(again.sample_batch("g", b, gen))
        assert again.sample_batch("f", 16, gen).shape == (16,)
    assert sorted(torch.cat(mixed).tolist()) == list(range(n))


def test_epoch_remainder_is_dropped_and_batches_stay_uniform(quad):
    """b not dividing n: floor(n / b) disjoint batches per epoch, then a new permutation; every
    sample is equally likely to appear in a batch (each batch is a uniform b-subset)."""
    problem, oracles, _, _ = quad
    n, b = problem.n_samples["g"], 100
    gen = torch.Generator().manual_seed(0)
    hits = torch.zeros(n)
    for _ in range(400):
        first, second = oracles.sample_batch("g", b, gen), oracles.sample_batch("g", b, gen)
        assert not set(first.tolist()) & set(second.tolist())  # same epoch: disjoint
        hits[first] += 1
        hits[second] += 1
    expected = 400 * 2 * b / n  # 312.5 hits per sample; binomial sd ~ 14
    assert float((hits - expected).abs().max()) < 6 * (expected * (1 - b / n)) ** 0.5
