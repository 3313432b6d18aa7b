"""Line plots as self-contained inline SVG (no matplotlib, no JavaScript, no fonts to embed).

A plot is a list of :class:`Series` (x, y, optional lower/upper band, step or straight lines)
drawn on linear or log axes with a legend beside the axes. Every text that reaches the SVG goes
through :func:`html.escape`, so labels taken from run records (solver names) render as text.
Generating SVG directly keeps a site of thousands of runs fast to build and small to load.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import numpy as np

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]
DASHES = ["", "6 3", "2 2", "8 3 2 3"]
WIDTH, HEIGHT, LEGEND = 560, 320, 190
MARGIN = {"left": 62, "right": 12, "top": 28, "bottom": 44}
_IDS = itertools.count()


@dataclass
class Series:
    """One curve: ``y`` against ``x``; ``lo``/``hi`` draw a band; ``step`` holds each value
    until the next x (post-step, as for a best-so-far trace or a profile)."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    lo: Sequence[float] | None = None
    hi: Sequence[float] | None = None
    step: bool = False


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
    return {0: "1", 1: "10", -1: "0.1"}.get(e, f"1e{e}")


def _path(xs: np.ndarray, ys: np.ndarray, step: bool) -> list[str]:
    """SVG path data for the finite stretches of a curve (gaps break the line)."""
    parts, current = [], []
    prev_y = None
    for x, y in zip(xs, ys, strict=True):
        if not (math.isfinite(x) and math.isfinite(y)):
            if current:
                parts.append(current)
            current, prev_y = [], None
            continue
        if step and prev_y is not None:
            current.append(f"{x:.1f},{prev_y:.1f}")
        current.append(f"{x:.1f},{y:.1f}")
        prev_y = y
    if current:
        parts.append(current)
    return ["M" + " L".join(p) for p in parts if p]


def line_plot(series: Sequence[Series], *, title: str, xlabel: str, ylabel: str,
              xlog: bool = False, ylog: bool = False, hline: float | None = None,
              hline_label: str = "target", xlim: tuple[float, float] | None = None,
              ylim: tuple[float, float] | None = None) -> str:
    """An SVG line plot (a string to inline in HTML)."""
    left, top = MARGIN["left"], MARGIN["top"]
    right, bottom = WIDTH - MARGIN["right"], HEIGHT - MARGIN["bottom"]
    xs = [np.asarray(s.x, dtype=float) for s in series]
    ys = [np.asarray(s.y, dtype=float) for s in series]
    bands = [np.asarray(v, dtype=float) for s in series for v in (s.lo, s.hi) if v is not None]
    xall = np.concatenate(xs) if xs else np.array([])
    yall = np.concatenate(ys + bands + ([np.array([hline])] if hline is not None else []))
    ax = _Axis(np.array(xlim, dtype=float) if xlim else xall, xlog, (left, right))
    ay = _Axis(np.array(ylim, dtype=float) if ylim else yall, ylog, (bottom, top))
    total = WIDTH + LEGEND
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {total} {HEIGHT}" '
           f'class="plot" role="img" aria-label="{escape(title)}">',
           f"<title>{escape(title)}</title>",
           f'<text x="{(left + right) / 2:.0f}" y="16" class="ptitle" '
           f'text-anchor="middle">{escape(title)}</text>',
           f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" '
           'class="frame"/>']
    for value, label in ax.ticks():
        px = float(ax(value))
        out.append(f'<line x1="{px:.1f}" y1="{top}" x2="{px:.1f}" y2="{bottom}" class="grid"/>'
                   f'<text x="{px:.1f}" y="{bottom + 14}" text-anchor="middle">{label}</text>')
    for value, label in ay.ticks():
        py = float(ay(value))
        out.append(f'<line x1="{left}" y1="{py:.1f}" x2="{right}" y2="{py:.1f}" class="grid"/>'
                   f'<text x="{left - 4}" y="{py + 4:.1f}" text-anchor="end">{label}</text>')
    out.append(f'<text x="{(left + right) / 2:.0f}" y="{HEIGHT - 8}" '
               f'text-anchor="middle">{escape(xlabel)}</text>'
               f'<text transform="translate(14 {(top + bottom) / 2:.0f}) rotate(-90)" '
               f'text-anchor="middle">{escape(ylabel)}</text>')
    clip = f"clip{next(_IDS)}"
    out.append(f'<clipPath id="{clip}"><rect x="{left}" y="{top}" width="{right - left}" '
               f'height="{bottom - top}"/></clipPath><g clip-path="url(#{clip})">')
    if hline is not None and math.isfinite(ay(hline)):
        py = float(ay(hline))
        out.append(f'<line x1="{left}" y1="{py:.1f}" x2="{right}" y2="{py:.1f}" class="hline">'
                   f"<title>{escape(hline_label)} = {hline:.4g}</title></line>")
    legend = []
    for i, s in enumerate(series):
        color, dash = PALETTE[i % len(PALETTE)], DASHES[(i // len(PALETTE)) % len(DASHES)]
        px, py = ax(xs[i]), ay(ys[i])
        label = escape(s.label)
        if s.lo is not None and s.hi is not None:
            lo, hi = ay(s.lo), ay(s.hi)
            for seg in _band(px, lo, hi, s.step):
                out.append(f'<path d="{seg}" fill="{color}" fill-opacity="0.15" stroke="none"/>')
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        for seg in _path(px, py, s.step):
            out.append(f'<path d="{seg}" fill="none" stroke="{color}" stroke-width="1.6"'
                       f"{dash_attr}><title>{label}</title></path>")
        legend.append((label, color, dash_attr))
    out.append("</g>")
    for i, (label, color, dash_attr) in enumerate(legend[:18]):
        y = top + 6 + 16 * i
        short = label if len(label) <= 40 else label[:37] + "…"
        out.append(f'<line x1="{WIDTH + 4}" y1="{y}" x2="{WIDTH + 24}" y2="{y}" '
                   f'stroke="{color}" stroke-width="2"{dash_attr}/>'
                   f'<text x="{WIDTH + 28}" y="{y + 4}">{short}</text>')
    if len(legend) > 18:
        out.append(f'<text x="{WIDTH + 4}" y="{top + 6 + 16 * 18 + 4}">'
                   f"+{len(legend) - 18} more (hover a curve)</text>")
    out.append("</svg>")
    return "".join(out)


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
            pts = [f"{x:.1f},{y:.1f}" for x, y in zip(xs, up, strict=True)]
            pts += [f"{x:.1f},{y:.1f}" for x, y in zip(xs[::-1], dn[::-1], strict=True)]
            out.append("M" + " L".join(pts) + " Z")
        start = None
    return out
