"""Tables of the site: one model renders the sortable HTML table and writes its CSV and JSON.

A :class:`Table` holds raw rows (dicts of plain values) and :class:`Column` s that say how to
show them. The page gets :meth:`Table.body_html`: per cell the display text, a sort key and an
optional link (:meth:`Table.cells`), all escaped; the downloads contain the raw rows.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

#: display kinds: text | num | int | pct | ci (value [lo, hi]) | iqr (median [q25, q75]) | rank
KINDS = {"text", "num", "int", "pct", "ci", "iqr", "rank"}


@dataclass
class Column:
    """How to show ``row[key]``. ``lo``/``hi`` name the interval keys of ``ci``/``iqr`` columns;
    ``link`` names the row key that holds the cell's href; ``title`` the row key that holds the
    cell's own tooltip (e.g. why a run failed); ``tip`` is a header tooltip;
    ``detail`` columns are shown only behind the table's "all columns" toggle (the decisive
    ones stay visible without horizontal scrolling)."""

    key: str
    label: str
    kind: str = "text"
    lo: str | None = None
    hi: str | None = None
    link: str | None = None
    title: str | None = None
    tip: str = ""
    detail: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown column kind {self.kind!r}")


@dataclass
class Table:
    """A titled table with downloads ``data/<id>.csv`` and ``data/<id>.json``."""

    id: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""

    def cells(self, columns: list[Column] | None = None) -> list[list[dict[str, Any]]]:
        """Rows of ``{"text", "sort", "href", "num", "cls", "title"}`` cells for the
        template."""
        return [[_cell(col, row) for col in (columns or self.columns)] for row in self.rows]

    def body_html(self, columns: list[Column] | None = None) -> Markup:
        """The ``<tr>`` rows of :meth:`cells` as escaped HTML, one line per row (built here
        rather than in the template: a cell costs a few string operations, not a dozen
        template lookups)."""
        out = []
        for row in self.cells(columns):
            out.append("<tr>")
            for cell in row:
                text = _html(cell["text"])
                if cell["href"]:
                    text = f'<a href="{_html(cell["href"])}">{text}</a>'
                title = f' title="{_html(cell["title"])}"' if cell["title"] else ""
                out.append(f'<td class="{"num " if cell["num"] else ""}{_html(cell["cls"])}" '
                           f'data-sort="{_html(cell["sort"])}"{title}>{text}</td>')
            out.append("</tr>\n")
        return Markup("".join(out))

    @property
    def decisive(self) -> list[Column]:
        """The columns shown at once (the others are behind a details toggle)."""
        return [c for c in self.columns if not c.detail]

    @property
    def has_details(self) -> bool:
        return any(c.detail for c in self.columns)

    def write(self, data_dir: Path) -> None:
        """Write the raw rows as CSV and JSON (non-finite numbers: ``inf``/``-inf``/null)."""
        keys = _keys(self.rows, {c.link for c in self.columns if c.link}
                     | {c.title for c in self.columns if c.title})
        with open(data_dir / f"{self.id}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(keys)
            for row in self.rows:
                writer.writerow([_csv_value(row.get(k)) for k in keys])
        payload = {"title": self.title, "rows": [{k: _json_value(row.get(k)) for k in keys}
                                                 for row in self.rows]}
        (data_dir / f"{self.id}.json").write_text(
            json.dumps(payload, allow_nan=False, default=str), encoding="utf-8")


def _html(value: Any) -> str:
    """``value`` escaped for HTML text and attributes, as a plain string (a Markup would
    escape whatever is added to it)."""
    return str(escape(value))


def slug(*parts: Any) -> str:
    """A file-name-safe, collision-free name for page and table ids."""
    text = "\x1f".join(str(p) for p in parts)
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48] or "x"
    return f"{base}-{hashlib.sha1(text.encode()).hexdigest()[:6]}"


def problem_href(name: str) -> str:
    return f"problem-{slug(name)}.html"


def solver_href(name: str) -> str:
    return f"solver-{slug(name)}.html"


def _keys(rows: Iterable[dict[str, Any]], hidden: set[str | None]) -> list[str]:
    keys: dict[str, None] = {}
    for row in rows:
        for key in row:
            if key not in hidden:
                keys.setdefault(key, None)
    return list(keys)


def _csv_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if hasattr(value, "item"):  # numpy scalars
        return _json_value(value.item())
    return value


def number(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing / not a number."""
    if value is None or isinstance(value, bool | str):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def fmt(value: Any, kind: str = "num") -> str:
    """Compact display of a number (``∞`` for a failure, ``–`` for missing)."""
    v = number(value)
    if v is None:
        return "–" if value is None or not isinstance(value, str) else value
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if kind == "pct":
        return f"{100 * v:.0f}%"
    if kind == "int":
        return f"{v:.0f}"
    return f"{v:.3g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"


def _cell(col: Column, row: dict[str, Any]) -> dict[str, Any]:
    value = row.get(col.key)
    href = row.get(col.link) if col.link else None
    title = row.get(col.title) if col.title else None
    if col.kind == "text" or isinstance(value, str):
        text = "–" if value is None else str(value)
        return {"text": text, "sort": text.lower() if col.kind == "text" else "",
                "href": href, "num": col.kind != "text", "cls": _state(text), "title": title}
    v = number(value)
    sort = "" if v is None else ("1e308" if v == math.inf else "-1e308" if v == -math.inf
                                 else repr(v))
    if col.kind == "rank":
        text = "–" if v is None else ("=" if row.get("tied") else "") + fmt(v, "int")
    elif col.kind in ("ci", "iqr") and v is not None:
        lo, hi = row.get(col.lo or ""), row.get(col.hi or "")
        text = f"{fmt(v)} [{fmt(lo)}, {fmt(hi)}]"
    else:
        text = fmt(value, col.kind)
    return {"text": text, "sort": sort, "href": href, "num": True, "cls": "", "title": title}


def _state(text: str) -> str:
    """A CSS class that tells the states of a cell apart at a glance."""
    if text == "diverged" or text.endswith("diverged)"):
        return "st-div"
    if text.startswith("n/a"):
        return "st-na"
    if text == "not run":
        return "st-nr"
    if "failed" in text:
        return "st-fail"
    return ""
