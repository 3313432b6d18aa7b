"""ITD through torchopt's differentiable functional SGD (optional plugin, extra ``plugins``).

Ren et al., TorchOpt: An Efficient Library for Differentiable Optimization, JMLR 2023,
arXiv:2211.06934; reverse-mode unrolling as in ITD (Franceschi et al., arXiv:1703.01785).
T steps of ``torchopt.sgd`` with ``inplace=False`` (differentiable updates) on g(x, .) from the
previous y_T (warm start), then x <- Proj_X(x - alpha d/dx f(x, y_T(x))) by back-propagation
through all T steps (no projection of y inside the unroll). Defaults as ITD.
"""

from __future__ import annotations

import torch
from bilevel_bench_baselines.itd import ITD
from bilevel_bench_baselines.torchopt_implicit import _import_torchopt

from bilevel_bench import Solver


class TorchoptUnrolled(Solver):
    name = "torchopt-unrolled"
    requires = {"torchopt": "pip install 'bilevel-bench[plugins]'"}
    version = "1.0"
    citation = "Ren et al., TorchOpt, JMLR 2023, arXiv:2211.06934"
    needs = frozenset({"second_order"})
    handles = frozenset({"cuda"})
    hyperparameters = {k: ITD.hyperparameters[k] for k in ("outer_lr", "inner_lr", "inner_steps")}

    def init(self, problem, x0, y0, generator):
        self.torchopt = _import_torchopt()
        ITD.init(self, problem, x0, y0, generator)

    def step(self):
        p, torchopt = self.problem, self.torchopt
        optimizer = torchopt.sgd(lr=self.inner_lr)
        with torch.enable_grad():
            x = self.x.detach().requires_grad_(True)
            y = self.y.detach().requires_grad_(True)
            state = optimizer.init(y)
            for _ in range(self.inner_steps):
                (grad,) = torch.autograd.grad(p.g(x, y), y, create_graph=True)
                updates, state = optimizer.update(grad, state, inplace=False)
                y = torchopt.apply_updates(y, updates, inplace=False)
            (self.last_hypergradient,) = torch.autograd.grad(p.f(x, y), x)
        self.y = y.detach()
        self.x = p.project_x(self.x - self.outer_lr * self.last_hypergradient)

    def solution(self):
        return self.x, self.y
