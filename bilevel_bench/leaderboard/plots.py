"""Line plots as self-contained inline SVG (no matplotlib, no fonts to embed).

A plot is a list of :class:`Series` (x, y, optional lower/upper band, step or straight lines,
markers) drawn on linear or log axes with a legend beside the axes that lists *every* series
(the plot grows taller rather than clip it). At most ``max_visible`` series are drawn by
default (the first ones: callers order leaders first; ``Series.visible`` forces one on, e.g. a
solver the reader highlights); the others are in the SVG with class ``off`` (hidden by the
stylesheet) and the legend greys them out: ``static/plots.js`` toggles them with a click, shows
the values under the pointer and honours ``?highlight=NAME``. Without JavaScript the static SVG
is complete for the series drawn. The SVG is meant to be shown at its natural size (the
stylesheet scales it down only on narrow screens), so its 13-unit fonts are 13 px.

Every text that reaches the SVG goes through :func:`html.escape`, so labels taken from run
records (solver names) render as text.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

import numpy as np

#: 8 colours that stay distinguishable (Okabe–Ito plus two); series beyond 8 also get a dash
PALETTE = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000",
           "#7f7f7f"]
DASHES = ["", "7 3", "2 2", "8 3 2 3"]
WIDTH, HEIGHT, LEGEND = 540, 320, 230
MARGIN = {"left": 66, "right": 14, "top": 30, "bottom": 46}
ROW = 19  # legend row height
MAX_VISIBLE = 8
MAX_LABEL = 30
CLIP_ID = "<clip>"  # never in the output otherwise: every text in it is escaped


@dataclass
class Series:
    """One curve: ``y`` against ``x``; ``lo``/``hi`` draw a band; ``step`` holds each value
    until the next x (post-step, as for a best-so-far trace or an ECDF). ``markers`` are
    (x, y) points drawn as crosses (e.g. where runs diverged) and ``note`` is appended to the
    legend entry; ``visible`` forces the series on by default."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    lo: Sequence[float] | None = None
    hi: Sequence[float] | None = None
    step: bool = False
    markers: list[tuple[float, float]] = field(default_factory=list)
    note: str = ""
    visible: bool = False
    key: str = ""  # the name ?highlight= matches (default: the label)
    color: str = ""  # default: the palette's colour of the series' position
    dash: str | None = None  # default: the dash of the series' position


class _Axis:
    def __init__(self, values: np.ndarray, log: bool, pixels: tuple[float, float]) -> None:
        values = values[np.isfinite(values)]
        if log:
            values = values[values > 0]
        self.log = log
        if values.size == 0:
            lo, hi = (1.0, 10.0) if log else (0.0, 1.0)
        else:
            lo, hi = float(values.min()), float(values.max())
        if log:
            lo, hi = math.log10(lo), math.log10(hi)
        if hi - lo < 1e-12:
            pad = 0.5 if log else (abs(lo) * 0.1 or 0.5)
            lo, hi = lo - pad, hi + pad
        self.lo, self.hi = lo, hi
        self.p0, self.p1 = pixels

    def __call__(self, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=float)
        if self.log:
            with np.errstate(divide="ignore", invalid="ignore"):
                v = np.where(v > 0, np.log10(np.where(v > 0, v, 1.0)), np.nan)
        return self.p0 + (v - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0)

    def spec(self) -> list[float | int]:
        return [round(self.p0, 2), round(self.p1, 2), self.lo, self.hi, int(self.log)]

    def ticks(self) -> list[tuple[float, str]]:
        if self.log:
            first, last = math.ceil(self.lo - 1e-9), math.floor(self.hi + 1e-9)
            step = max(1, math.ceil((last - first + 1) / 7))
            exps = range(first, last + 1, step)
            return [(10.0 ** e, _fmt_pow(e)) for e in exps]
        step = _nice_step((self.hi - self.lo) / 5)
        start = math.ceil(self.lo / step - 1e-9) * step
        out, v = [], start
        while v <= self.hi + 1e-9 * step:
            out.append((v, f"{(0.0 if abs(v) < step * 1e-9 else v):.4g}"))
            v += step
        return out


def _nice_step(raw: float) -> float:
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for mult in (1, 2, 2.5, 5, 10):
        if raw <= mult * power:
            return mult * power
    return 10 * power


def _fmt_pow(e: int) -> str:
    return {0: "1", 1: "10", -1: "0.1", 2: "100"}.get(e, f"1e{e}")


def _path(xs: np.ndarray, ys: np.ndarray, step: bool) -> list[str]:
    """SVG path data for the finite stretches of a curve (gaps break the line)."""
    ok = np.flatnonzero(np.isfinite(xs) & np.isfinite(ys))
    out = []
    for run in np.split(ok, np.flatnonzero(np.diff(ok) > 1) + 1) if ok.size else []:
        x, y = xs[run], ys[run]
        if step:  # (x_k, y_{k-1}) before each (x_k, y_k): a staircase
            x, y = np.repeat(x, 2)[1:], np.repeat(y, 2)[:-1]
        out.append("M" + _points(x, y))
    return out


def _points(x: np.ndarray, y: np.ndarray) -> str:
    """``x0,y0 Lx1,y1 L...`` with one decimal: one format operation for the whole line."""
    pairs = np.column_stack([x, y]).ravel().tolist()
    return " L".join(["%.1f,%.1f"] * len(x)) % tuple(pairs)


def _num(v: float) -> float | None:
    return float(f"{v:.5g}") if math.isfinite(v) else None


def _rounded(values: np.ndarray) -> list:
    """``values`` as nested lists of :func:`_num` (5 significant digits, None for a
    non-finite value); one format operation when every value is finite."""
    if not np.isfinite(values).all():
        return [[_num(v) for v in row] for row in values.tolist()]
    flat = values.ravel().tolist()
    numbers = list(map(float, ("%.5g\n" * len(flat) % tuple(flat)).split()))
    width = values.shape[1]
    return [numbers[k:k + width] for k in range(0, len(numbers), width)]


def line_plot(series: Sequence[Series], *, title: str, xlabel: str, ylabel: str,
              xlog: bool = False, ylog: bool = False, hline: float | None = None,
              hline_label: str = "target", hlines: Sequence[tuple[float, str]] = (),
              xlim: tuple[float, float] | None = None,
              ylim: tuple[float, float] | None = None, max_visible: int = MAX_VISIBLE,
              note: str = "") -> str:
    """An SVG line plot (a string to inline in HTML). ``hline``/``hlines``: labelled
    horizontal reference lines (targets); ``note``: a line of text under the legend."""
    left, top = MARGIN["left"], MARGIN["top"]
    right = WIDTH - MARGIN["right"]
    lines = [*([(hline, hline_label)] if hline is not None else []), *hlines]
    notes = _wrap(note, 34) if note else []
    rows = len(series) + len(notes) + (1 if len(series) > max_visible else 0)
    height = max(HEIGHT, top + ROW * rows + 12)
    bottom = height - MARGIN["bottom"]
    xs = [np.asarray(s.x, dtype=float) for s in series]
    ys = [np.asarray(s.y, dtype=float) for s in series]
    bands = [np.asarray(v, dtype=float) for s in series for v in (s.lo, s.hi) if v is not None]
    marks = [np.array([p[1] for p in s.markers], dtype=float) for s in series]
    xall = np.concatenate(xs) if xs else np.array([])
    yall = np.concatenate([*ys, *bands, *marks, np.array([v for v, _ in lines], dtype=float)])
    ax = _Axis(np.array(xlim, dtype=float) if xlim else xall, xlog, (left, right))
    ay = _Axis(np.array(ylim, dtype=float) if ylim else yall, ylog, (bottom, top))
    total = WIDTH + LEGEND
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {total} {height}" '
           f'width="{total}" height="{height}" class="plot" role="img" '
           f'aria-label="{escape(title)}" data-ax="{escape(json.dumps(ax.spec()))}" '
           f'data-ay="{escape(json.dumps(ay.spec()))}" data-xlabel="{escape(xlabel)}">',
           f"<title>{escape(title)}</title>",
           f'<text x="{(left + right) / 2:.0f}" y="18" class="ptitle" '
           f'text-anchor="middle">{escape(title)}</text>',
           f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" '
           'class="frame"/>']
    for value, label in ax.ticks():
        px = float(ax(value))
        out.append(f'<line x1="{px:.1f}" y1="{top}" x2="{px:.1f}" y2="{bottom}" class="grid"/>'
                   f'<text x="{px:.1f}" y="{bottom + 16}" text-anchor="middle">{label}</text>')
    for value, label in ay.ticks():
        py = float(ay(value))
        out.append(f'<line x1="{left}" y1="{py:.1f}" x2="{right}" y2="{py:.1f}" class="grid"/>'
                   f'<text x="{left - 5}" y="{py + 4:.1f}" text-anchor="end">{label}</text>')
    out.append(f'<text x="{(left + right) / 2:.0f}" y="{height - 8}" '
               f'text-anchor="middle">{escape(xlabel)}</text>'
               f'<text transform="translate(15 {(top + bottom) / 2:.0f}) rotate(-90)" '
               f'text-anchor="middle">{escape(ylabel)}</text>')
    clip = CLIP_ID  # replaced by a digest of the whole plot (below)
    out.append(f'<clipPath id="{clip}"><rect x="{left}" y="{top}" width="{right - left}" '
               f'height="{bottom - top}"/></clipPath><g clip-path="url(#{clip})">')
    for value, label in lines:
        py = float(ay(value)) if value is not None else math.nan
        if math.isfinite(py) and top - 0.5 <= py <= bottom + 0.5:
            out.append(f'<line x1="{left}" y1="{py:.1f}" x2="{right}" y2="{py:.1f}" '
                       f'class="hline"/><text x="{right - 4}" y="{py - 4:.1f}" '
                       f'text-anchor="end" class="hlabel">{escape(label)} = {value:.3g}</text>')
    forced = {i for i, s in enumerate(series) if s.visible}
    shown = set(list(forced) + [i for i in range(len(series)) if i not in forced]
                [:max(0, max_visible - len(forced))])
    legend = []
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        dash = s.dash if s.dash is not None else DASHES[(i // len(PALETTE)) % len(DASHES)]
        px, py = ax(xs[i]), ay(ys[i])
        label = escape(s.label)
        off = "" if i in shown else " off"
        data = json.dumps(_rounded(np.column_stack([xs[i], ys[i]])))
        out.append(f'<g class="s{off}" data-i="{i}" data-key="{escape(s.key or s.label)}" '
                   f'data-label="{label}" data-step="{int(s.step)}" '
                   f'data-xy="{escape(data)}">')
        if s.lo is not None and s.hi is not None:
            lo, hi = ay(s.lo), ay(s.hi)
            for seg in _band(px, lo, hi, s.step):
                out.append(f'<path d="{seg}" fill="{color}" fill-opacity="0.13" stroke="none"/>')
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        for seg in _path(px, py, s.step):
            out.append(f'<path d="{seg}" fill="none" stroke="{color}" stroke-width="1.8"'
                       f"{dash_attr}><title>{label}</title></path>")
        for mx, my in s.markers:
            cx, cy = float(ax(mx)), float(ay(my))
            if math.isfinite(cx) and math.isfinite(cy):
                out.append(f'<path d="M{cx - 5:.1f},{cy - 5:.1f} L{cx + 5:.1f},{cy + 5:.1f} '
                           f'M{cx - 5:.1f},{cy + 5:.1f} L{cx + 5:.1f},{cy - 5:.1f}" '
                           f'stroke="{color}" stroke-width="2.2" class="mark">'
                           f"<title>{label}: diverged here</title></path>")
        out.append("</g>")
        legend.append((i, s, color, dash_attr, off))
    out.append("</g>")
    lx = WIDTH + 4
    for row, (i, s, color, dash_attr, off) in enumerate(legend):
        y = top + 8 + ROW * row
        text = s.label + (f" {s.note}" if s.note else "")
        short = text if len(text) <= MAX_LABEL else text[:MAX_LABEL - 1] + "…"
        out.append(f'<g class="lg{off}" data-i="{i}" tabindex="0" role="button" '
                   f'aria-pressed="{"false" if off else "true"}"><title>{escape(text)} '
                   f'(click to show or hide)</title>'
                   f'<rect x="{lx - 2}" y="{y - 9}" width="{LEGEND - 6}" height="{ROW - 1}" '
                   f'class="lghit"/><line x1="{lx}" y1="{y}" x2="{lx + 22}" y2="{y}" '
                   f'stroke="{color}" stroke-width="2.5"{dash_attr}/>'
                   f'<text x="{lx + 27}" y="{y + 4}">{escape(short)}</text></g>')
    extra = len(legend)
    if len(series) > max_visible:
        hidden = len(series) - len(shown)
        out.append(f'<text x="{lx}" y="{top + 8 + ROW * extra + 4}" class="lgnote">'
                   f"{hidden} greyed: click to draw</text>")
        extra += 1
    for k, line in enumerate(notes):
        out.append(f'<text x="{lx}" y="{top + 8 + ROW * (extra + k) + 4}" class="lgnote">'
                   f"{escape(line)}</text>")
    out.append("</svg>")
    svg = "".join(out)
    # the clip path's id: a digest of the plot, the same in every build, distinct on a page
    # unless two plots are identical (and so are their clip rectangles)
    return svg.replace(CLIP_ID, "clip-" + hashlib.sha1(svg.encode()).hexdigest()[:12])


def _wrap(text: str, width: int) -> list[str]:
    lines, current = [], ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    return lines + ([current] if current else [])


def _band(px: np.ndarray, lo: np.ndarray, hi: np.ndarray, step: bool) -> list[str]:
    """Filled polygons between ``lo`` and ``hi`` over the finite stretches."""
    ok = np.isfinite(px) & np.isfinite(lo) & np.isfinite(hi)
    out, start = [], None
    for i in range(len(px) + 1):
        if i < len(px) and ok[i]:
            start = i if start is None else start
            continue
        if start is not None and i - start >= 1:
            idx = np.arange(start, i)
            if step:
                xs = np.repeat(px[idx], 2)[1:]
                up, dn = np.repeat(hi[idx], 2)[:-1], np.repeat(lo[idx], 2)[:-1]
            else:
                xs, up, dn = px[idx], hi[idx], lo[idx]
            out.append("M" + _points(np.r_[xs, xs[::-1]], np.r_[up, dn[::-1]]) + " Z")
        start = None
    return out
