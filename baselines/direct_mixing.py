"""Direct mixing: keep the UL variable at its initial point and train the LL variable only.

The "direct mixing" baseline of bilevel data selection (Xiao & Chen, arXiv:2511.21056; SEAL,
arXiv:2410.07471): fine-tune on the unfiltered mixture, i.e. on g(x0, y) with the initial
(uniform) sample weights x0, never changing x. Generic: on any problem it is the no-UL-optimisation
reference, y <- Proj_Y(y - lr grad_y g(x0, y)), ``inner_steps`` steps per iteration on
mini-batches of ``batch_size`` LL samples (all samples when 0 or the problem is deterministic).
Oracle cost per iteration: ``inner_steps`` gradients of g (times the batch fraction).

A canary (``canary = True``, protocol v3): it does no bilevel work on purpose, is shown as a
reference line and never ranked; the other canaries are in :mod:`canaries`.
"""

from __future__ import annotations

from bilevel_bench_baselines.inner_loops import projected_gradient_descent_y

from bilevel_bench import Hyperparameter, LogUniform, Solver


class DirectMixing(Solver):
    name = "direct-mixing"
    version = "1.0"
    citation = "Xiao & Chen, Bilevel Data Curation for LLM Fine-tuning: Offline Selection and " \
               "Online Self-Refining Generation, arXiv:2511.21056 (direct-mixing baseline)"
    canary = True
    needs = frozenset()
    handles = frozenset({"cuda"})
    hyperparameters = {
        "lr": Hyperparameter(0.1, LogUniform(1e-4, 1.0), "LL step"),
        "inner_steps": Hyperparameter(1, LogUniform(1, 100, integer=True), "LL steps per step"),
        "batch_size": Hyperparameter(0, None, "LL mini-batch size (0: full batch)"),
    }

    def init(self, problem, x0, y0, generator):
        self.problem, self.generator = problem, generator
        self.x, self.y = x0.clone(), y0.clone()

    def _batch(self):
        size = self.batch_size or None
        return None, self.problem.sample_batch("g", size, self.generator)

    def step(self):
        self.y = projected_gradient_descent_y(
            self.problem, self.x, self.y, self.lr, self.inner_steps, batch=self._batch)

    def solution(self):
        return self.x, self.y
