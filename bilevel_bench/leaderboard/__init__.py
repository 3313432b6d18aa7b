"""The static HTML leaderboard: ``build_site(results_dirs, site_dir) -> index.html``.

See :mod:`bilevel_bench.leaderboard.build` for the pages and :mod:`bilevel_bench.metrics` for the
scoring."""

from bilevel_bench.leaderboard.build import build_site

__all__ = ["build_site"]
