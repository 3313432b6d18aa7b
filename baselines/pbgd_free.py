"""PBGD-Free: value-function-free penalty-based bilevel gradient descent.

Jiang, Xiao, Chen, Chen, Beyond Value Functions: Single-Loop Bilevel Optimization under
Flatness Conditions, NeurIPS 2025, arXiv:2507.20400; coupled form in arXiv:2511.16796.
The penalty-gradient term gamma (grad_x g(x, y_gamma) - grad_x g(x, y_g)) of ALT-PBGD is dropped
(negligible when f is flat in y near the LL solution), so no value function is tracked:

    y_{t,k+1} = Proj_Y(y_{t,k} - eta_gamma (grad_y f(x_t, y_{t,k})/gamma + grad_y g(x_t, y_{t,k})))
                                                          k < K (K = 1: fully single loop)
    x_{t+1} = Proj_X(x_t - eta grad_x f(x_t, y_t))

Coupled constraints: y is the warm-started Lagrangian max-min solution of f/gamma + g + mu^T h
(T rounds of K primal steps and one dual ascent step) and, as in the authors' SVM code, the
x-step still uses grad_x f(x, y) only. When f is not flat (the counter-example P2, where
grad_y f = 10) the method converges to x = 0 instead of x* = -5, as the paper predicts.

Defaults: toy notebook (P2) gamma = 15, steps 0.01, K = 1; coupled (SVM repo) T = 10 dual
rounds with dual step 0.001 (the SVM repo also uses K = 5, steps 0.005).

Default step rule (``safe_steps = True``, version 2): the LL steps are capped, once at the start,
at the stability limits of their own updates (``inner_loops.stable_max_min_steps``):
eta_gamma <= 1/L(f/gamma + g) (curvature in y by power iteration on gradient differences) and,
with coupled constraints, beta <= 1 / (K eta_gamma |dh/dy|^2). Inactive on the toys; on SVM HO
(curvature of f ~3e3 at the start) the published steps diverge and the caps take over.
``safe_steps = False`` runs the steps as given (the reference configurations).
Oracle cost per iteration (uncoupled): K gradients of g, K + 1 gradients of f.
"""

from __future__ import annotations

from bilevel_bench_baselines.inner_loops import PenaltyMethodBase

from bilevel_bench import Hyperparameter, LogUniform, Reference, Solver


class PBGDFree(PenaltyMethodBase, Solver):
    name = "pbgd-free"
    version = "2.0"
    citation = "Jiang, Xiao, Chen, Chen, Beyond Value Functions: Single-Loop Bilevel " \
               "Optimization under Flatness Conditions, NeurIPS 2025, arXiv:2507.20400"
    needs = frozenset({"ul_x_gradient"})  # x <- x - eta grad_x f: nothing else moves x
    handles = frozenset({"coupled_constraints", "cuda"})
    hyperparameters = {
        "gamma": Hyperparameter(15.0, LogUniform(1.0, 1000.0), "penalty constant"),
        "lr": Hyperparameter(0.01, LogUniform(1e-4, 1.0), "UL step eta"),
        "inner_lr": Hyperparameter(0.01, LogUniform(1e-4, 1.0), "step eta_gamma on f/gamma + g"),
        "inner_steps": Hyperparameter(1, LogUniform(1, 100, integer=True), "K"),
        "dual_lr": Hyperparameter(0.001, LogUniform(1e-5, 1.0), "dual step (coupled only)"),
        "dual_steps": Hyperparameter(10, LogUniform(1, 100, integer=True), "T (coupled only)"),
        "safe_steps": Hyperparameter(True, None, "cap the steps at their stability limits "
                                     "estimated at the start (False: as given)"),
    }

    references = {
        "svm-ho": Reference(dict(safe_steps=False, gamma=15.0, lr=0.005, inner_lr=0.005,
                                 dual_lr=0.001, dual_steps=10, inner_steps=5),
                            "PBGD-Free repository, SVM: gamma 15, UL step 0.005, T 10 x Ty 5, "
                            "primal 0.005, dual 0.001 (arXiv:2507.20400)"),
    }

    def init(self, problem, x0, y0, generator):
        self._init_state(problem, x0, y0)
        self.steps_F = self._stable_steps(1.0 / self.gamma, self.inner_lr, self.dual_lr)

    def step(self):
        self._track_penalised(*self.steps_F)
        grad_x, _ = self.problem.grad("f", self.x, self.y, wrt="x")
        self.x = self.problem.project_x(self.x - self.lr * grad_x)
