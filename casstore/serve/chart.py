"""A line chart as inline SVG, drawn on the server: no JavaScript, nothing to download."""

from __future__ import annotations

import sys
from html import escape

from ..util.names import shown

WIDTH, HEIGHT = 1200, 260
LEFT, RIGHT, TOP, BOTTOM = 72, 16, 16, 44
#: version labels under the x axis: at most this many, evenly spread, so they stay readable
X_LABELS = 8
COLOURS = ("#1f5fbf", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490", "#a16207", "#4b5563")


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def line_chart(title: str, labels: list[str], values: list[float | None]) -> str:
    """An SVG of ``values`` (None = the version lacks the key) against version ``labels``."""
    return chart(title, labels, {title: values})


def _short(label: str, n: int = 16) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"


def chart(title: str, labels: list[str], series: dict[str, list[float | None]]) -> str:
    """An SVG of one or more series (one line each, one shared y axis) against version ``labels``.

    Every point carries a ``<title>`` (model ID, key and value) that browsers show on
    hover; up to ``X_LABELS`` version labels are spread along the x axis.  All text is
    escaped: labels and keys come from the store, which may be hostile.
    """
    w, h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    out = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
           f'role="img" aria-label="{escape(shown(title))}">',
           f'<rect x="{LEFT}" y="{TOP}" width="{w}" height="{h}" class="plot"/>']
    every = [v for values in series.values() for v in values if v is not None]
    if not every:
        out.append(f'<text x="{LEFT + w / 2}" y="{TOP + h / 2}" text-anchor="middle">no values</text></svg>')
        return "".join(out)
    lo, hi = min(every), max(every)
    if lo == hi:
        pad = (abs(lo) or 1) * 0.05
        lo, hi = max(lo - pad, -sys.float_info.max), min(hi + pad, sys.float_info.max)
    # halved: hi - lo of values near +-1.8e308 overflows to inf (and inf/inf is nan)
    half_span = hi / 2 - lo / 2
    n = max(len(labels) - 1, 1)

    def x_of(i: int) -> float:
        return LEFT + w * (i / n if len(labels) > 1 else 0.5)

    def xy(i: int, v: float) -> tuple[float, float]:
        # a span too small to halve (subnormal values): every point mid-height
        frac = (v / 2 - lo / 2) / half_span if half_span > 0 else 0.5
        return x_of(i), TOP + h * (1 - frac)

    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = TOP + h * (1 - frac)
        out.append(f'<line x1="{LEFT}" x2="{LEFT + w}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                   f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(lo * (1 - frac) + hi * frac)}</text>')
    ticks = sorted({round(k * (len(labels) - 1) / max(min(X_LABELS, len(labels)) - 1, 1))
                    for k in range(min(X_LABELS, len(labels)))})
    for i in ticks:
        x = x_of(i)
        anchor = "start" if i == 0 and len(labels) > 1 else "end" if i == len(labels) - 1 and i else "middle"
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP + h}" y2="{TOP + h + 4}" class="grid"/>'
                   f'<text class="xlabel" x="{x:.1f}" y="{TOP + h + 18}" text-anchor="{anchor}">'
                   f'<title>{escape(labels[i])}</title>{escape(_short(labels[i]))}</text>')
    many = len(series) > 1
    for k, (key, values) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        pts = [(i, v) for i, v in enumerate(values) if v is not None]
        coords = [xy(i, v) for i, v in pts]
        out.append(f'<polyline class="line" style="stroke:{colour}" points="'
                   + " ".join(f"{x:.1f},{y:.1f}" for x, y in coords) + '"/>')
        for (i, v), (x, y) in zip(pts, coords, strict=True):
            what = f"{escape(labels[i])} {escape(shown(key))}" if many else escape(labels[i])
            out.append(f'<circle style="fill:{colour}" cx="{x:.1f}" cy="{y:.1f}" r="3"><title>{what}: {_fmt(v)}'
                       "</title></circle>")
        if many:
            lx = LEFT + 8 + 170 * (k % 6)
            ly = HEIGHT - 8 - 14 * (k // 6)
            out.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" style="fill:{colour}"/>'
                       f'<text class="legend" x="{lx + 14}" y="{ly}">{escape(_short(shown(key), 24))}</text>')
    out.append("</svg>")
    return "".join(out)
