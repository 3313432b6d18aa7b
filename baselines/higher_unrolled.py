"""ITD through ``higher``'s differentiable optimizers (optional plugin, extra ``plugins``).

Grefenstette et al., Generalized Inner Loop Meta-Learning, arXiv:1910.01727 (the ``higher``
library); reverse-mode unrolling as in ITD (Franceschi et al., arXiv:1703.01785). y lives in a
one-parameter ``torch.nn.Module``; ``higher.innerloop_ctx`` turns torch.optim.SGD into a
differentiable optimizer; T steps on g(x, .) from the previous y_T (warm start), then
x <- Proj_X(x - alpha d/dx f(x, y_T(x))) by back-propagation through the T steps (no projection
of y inside the unroll). Defaults as ITD.
"""

from __future__ import annotations

import torch
from bilevel_bench_baselines.itd import ITD

from bilevel_bench import Solver


class _Holder(torch.nn.Module):
    def __init__(self, y: torch.Tensor) -> None:
        super().__init__()
        self.y = torch.nn.Parameter(y.detach().clone())


class HigherUnrolled(Solver):
    name = "higher-unrolled"
    requires = {"higher": "pip install 'bilevel-bench[plugins]'"}
    version = "1.0"
    citation = "Grefenstette et al., Generalized Inner Loop Meta-Learning, arXiv:1910.01727"
    needs = frozenset({"second_order"})
    handles = frozenset({"cuda"})
    hyperparameters = {k: ITD.hyperparameters[k] for k in ("outer_lr", "inner_lr", "inner_steps")}

    def init(self, problem, x0, y0, generator):
        try:
            import higher
        except ImportError as exc:  # pragma: no cover - exercised only without the extra
            raise ImportError("this solver needs higher: pip install 'bilevel-bench[plugins]'") \
                from exc
        self.higher = higher
        ITD.init(self, problem, x0, y0, generator)

    def step(self):
        p = self.problem
        holder = _Holder(self.y)
        optimizer = torch.optim.SGD(holder.parameters(), lr=self.inner_lr)
        with torch.enable_grad():
            x = self.x.detach().requires_grad_(True)
            with self.higher.innerloop_ctx(holder, optimizer, copy_initial_weights=True,
                                           track_higher_grads=True) as (model, diffopt):
                for _ in range(self.inner_steps):
                    diffopt.step(p.g(x, model.y))
                (self.last_hypergradient,) = torch.autograd.grad(p.f(x, model.y), x)
                self.y = model.y.detach().clone()
        self.x = p.project_x(self.x - self.outer_lr * self.last_hypergradient)

    def solution(self):
        return self.x, self.y
