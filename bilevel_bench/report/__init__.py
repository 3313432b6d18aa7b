"""``bilevel-bench report``: paper-ready tables, figures, commands and references from records.

See :mod:`bilevel_bench.report.build` for the folder it writes.
"""

from bilevel_bench.report.build import Written, write_report
from bilevel_bench.report.selection import ReportError

__all__ = ["ReportError", "Written", "write_report"]
