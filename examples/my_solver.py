"""A complete solver plugin in one file: first-order bilevel descent (FO-ITD).

Per iteration: K steps of LL gradient descent warm-started from the previous y, then a UL step
that drops the implicit (second-order) term of the hypergradient:

    y <- y - beta grad_y g(x, y)   (K times)
    x <- Proj_X(x - alpha grad_x f(x, y))

This is "FO-ITD" in reference §3.1 (cf. Ji, Yang, Liang, arXiv:2010.07962). It is exact when f
does not depend on y through x's influence on y*, and biased otherwise: a useful baseline.

Check it:  bilevel-bench check-solver examples/my_solver.py:FirstOrderITD
Run it:    bilevel-bench run --suite toys --solver examples/my_solver.py:FirstOrderITD
"""

from bilevel_bench import Hyperparameter, LogUniform, Solver


class FirstOrderITD(Solver):
    name = "fo-itd"
    version = "1.0"
    citation = "First-order ITD, cf. Ji, Yang, Liang, arXiv:2010.07962"
    needs = frozenset()  # no Hessian-vector products
    handles = frozenset({"cuda"})
    hyperparameters = {
        "outer_lr": Hyperparameter(0.05, LogUniform(1e-3, 1.0)),
        "inner_lr": Hyperparameter(0.1, LogUniform(1e-3, 1.0)),
        "inner_steps": Hyperparameter(10, LogUniform(1, 100, integer=True)),
    }

    def init(self, problem, x0, y0, generator):
        self.problem, self.x, self.y = problem, x0.clone(), y0.clone()

    def step(self):
        p = self.problem
        for _ in range(self.inner_steps):
            _, grad_y = p.grad("g", self.x, self.y, wrt="y")
            self.y = p.project_y(self.x, self.y - self.inner_lr * grad_y)
        grad_x, _ = p.grad("f", self.x, self.y, wrt="x")
        self.x = p.project_x(self.x - self.outer_lr * grad_x)

    def solution(self):
        return self.x, self.y
