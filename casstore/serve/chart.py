"""A line chart as inline SVG, drawn on the server: no JavaScript, nothing to download."""

from __future__ import annotations

import sys
from html import escape

from ..util.names import shown

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 40


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def line_chart(title: str, labels: list[str], values: list[float | None]) -> str:
    """An SVG of ``values`` (None = the version lacks the key) against version ``labels``.

    Every point carries a ``<title>`` (model ID and value) that browsers show on hover.
    All text is escaped: labels come from the store, which may be hostile.
    """
    pts = [(i, v) for i, v in enumerate(values) if v is not None]
    w, h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    out = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
           f'role="img" aria-label="{escape(shown(title))}">',
           f'<rect x="{LEFT}" y="{TOP}" width="{w}" height="{h}" class="plot"/>']
    if not pts:
        out.append(f'<text x="{LEFT + w / 2}" y="{TOP + h / 2}" text-anchor="middle">no values</text></svg>')
        return "".join(out)
    lo, hi = min(v for _, v in pts), max(v for _, v in pts)
    if lo == hi:
        pad = (abs(lo) or 1) * 0.05
        lo, hi = max(lo - pad, -sys.float_info.max), min(hi + pad, sys.float_info.max)
    # halved: hi - lo of values near +-1.8e308 overflows to inf (and inf/inf is nan)
    half_span = hi / 2 - lo / 2
    n = max(len(values) - 1, 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        # a span too small to halve (subnormal values): every point mid-height
        frac = (v / 2 - lo / 2) / half_span if half_span > 0 else 0.5
        return LEFT + w * (i / n if len(values) > 1 else 0.5), TOP + h * (1 - frac)

    for frac in (0.0, 0.5, 1.0):
        y = TOP + h * (1 - frac)
        out.append(f'<line x1="{LEFT}" x2="{LEFT + w}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                   f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(lo * (1 - frac) + hi * frac)}</text>')
    coords = [xy(i, v) for i, v in pts]
    out.append('<polyline class="line" points="' + " ".join(f"{x:.1f},{y:.1f}" for x, y in coords) + '"/>')
    for (i, v), (x, y) in zip(pts, coords, strict=True):
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5"><title>{escape(labels[i])}: {_fmt(v)}</title>'
                   "</circle>")
    first, last = labels[0], labels[-1]
    out.append(f'<text x="{LEFT}" y="{HEIGHT - 12}" text-anchor="start">{escape(first[:32])}</text>')
    if len(labels) > 1:
        out.append(f'<text x="{LEFT + w}" y="{HEIGHT - 12}" text-anchor="end">{escape(last[:32])} (newest)</text>')
    out.append("</svg>")
    return "".join(out)
