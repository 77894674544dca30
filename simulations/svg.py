"""Small self-written SVG charts for the HTML report (no plotting dependency, self-contained).

Each function returns one ``<svg>`` element as text; the caller embeds it in the page.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

WIDTH, HEIGHT = 860, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 150, 20, 40
Point = tuple[float, float]


def _nice_max(value: float) -> float:
    """A round axis maximum at or above ``value``."""
    if value <= 0:
        return 1.0
    exponent = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exponent:
            return step * exponent
    return 10 * exponent


def _frame(x_max: float, y_max: float, x_label: str, y_label: str) -> list[str]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="11">',
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
    ]
    for i in range(6):
        y = TOP + plot_h - plot_h * i / 5
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{y_max * i / 5:g}</text>'
        )
    for i in range(7):
        x = LEFT + plot_w * i / 6
        parts.append(
            f'<text x="{x:.1f}" y="{TOP + plot_h + 15}" text-anchor="middle">'
            f"{x_max * i / 6:.0f}</text>"
        )
    parts.append(
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
        f'stroke="#888"/>'
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 6}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
        f'<text x="14" y="{TOP + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {TOP + plot_h / 2})">{escape(y_label)}</text>'
    )
    return parts


def _xy(x: float, y: float, x_max: float, y_max: float) -> tuple[float, float]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    return LEFT + plot_w * x / x_max, TOP + plot_h - plot_h * min(y, y_max) / y_max


def _legend(names: Sequence[str], colours: Mapping[str, str]) -> list[str]:
    x = WIDTH - RIGHT + 12
    return [
        f'<rect x="{x}" y="{TOP + 16 * i}" width="12" height="10" fill="{colours[n]}"/>'
        f'<text x="{x + 17}" y="{TOP + 9 + 16 * i}">{escape(n)}</text>'
        for i, n in enumerate(names)
    ]


def _markers(markers: Sequence[tuple[float, str]], x_max: float) -> list[str]:
    parts = []
    for i, (at, label) in enumerate(markers):
        x, _ = _xy(at, 0, x_max, 1)
        parts.append(
            f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{HEIGHT - BOTTOM}" '
            f'stroke="#555" stroke-dasharray="4 3"/>'
            f'<text x="{x + 3:.1f}" y="{TOP + 11 + 12 * (i % 4)}" fill="#333">'
            f"{escape(label)}</text>"
        )
    return parts


def stacked_chart(
    series: Mapping[str, Sequence[float]],
    colours: Mapping[str, str],
    *,
    x_label: str,
    y_label: str,
    markers: Sequence[tuple[float, str]] = (),
) -> str:
    """Stacked areas, one value per second per series (series drawn in the given order)."""
    names = list(series)
    length = max((len(v) for v in series.values()), default=0)
    totals = [sum(series[n][i] if i < len(series[n]) else 0 for n in names) for i in range(length)]
    x_max, y_max = max(length, 1), _nice_max(max(totals, default=0))
    parts = _frame(x_max, y_max, x_label, y_label)
    base = [0.0] * length
    for name in names:
        top = [base[i] + (series[name][i] if i < len(series[name]) else 0) for i in range(length)]
        upper = [_xy(i + 0.5, top[i], x_max, y_max) for i in range(length)]
        lower = [_xy(i + 0.5, base[i], x_max, y_max) for i in reversed(range(length))]
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in upper + lower)
        parts.append(f'<polygon points="{points}" fill="{colours[name]}" fill-opacity="0.85"/>')
        base = top
    parts += _markers(markers, x_max) + _legend(names, colours) + ["</svg>"]
    return "".join(parts)


def line_chart(
    series: Mapping[str, Sequence[Point]],
    colours: Mapping[str, str],
    *,
    x_label: str,
    y_label: str,
    x_max: float,
    markers: Sequence[tuple[float, str]] = (),
) -> str:
    """Lines through (x, y) points."""
    y_max = _nice_max(max((y for pts in series.values() for _, y in pts), default=0))
    parts = _frame(max(x_max, 1), y_max, x_label, y_label)
    for name, points in series.items():
        if points:
            path = " ".join(
                f"{x:.1f},{y:.1f}" for x, y in (_xy(a, b, max(x_max, 1), y_max) for a, b in points)
            )
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{colours[name]}" '
                f'stroke-width="1.8"/>'
            )
    parts += _markers(markers, max(x_max, 1)) + _legend(list(series), colours) + ["</svg>"]
    return "".join(parts)


def heatmap(labels: Sequence[str], matrix: Sequence[Sequence[int]], *, title: str) -> str:
    """Origin (rows) x destination (columns) counts, darker = more."""
    n = len(labels)
    cell = max(12, min(44, 620 // max(n, 1)))
    margin = 130
    size = margin + cell * n + 20
    peak = max((v for row in matrix for v in row), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size + 90} {size}" '
        f'width="{size + 90}" height="{size}" font-family="sans-serif" '
        f'font-size="{min(11, cell - 2)}">',
        f'<rect width="{size + 90}" height="{size}" fill="white"/>',
        f'<text x="{margin}" y="12">{escape(title)}</text>',
    ]
    for i, label in enumerate(labels):
        y = margin + cell * i + cell / 2 + 4
        x = margin + cell * i + cell / 2
        parts.append(f'<text x="{margin - 4}" y="{y:.1f}" text-anchor="end">{escape(label)}</text>')
        parts.append(
            f'<text x="{x:.1f}" y="{margin - 4}" transform="rotate(-60 {x:.1f} {margin - 4})">'
            f"{escape(label)}</text>"
        )
        for j, value in enumerate(matrix[i]):
            shade = 1 - (value / peak) ** 0.5
            colour = f"rgb({int(30 + 225 * shade)},{int(80 + 175 * shade)},{int(160 + 95 * shade)})"
            parts.append(
                f'<rect x="{margin + cell * j}" y="{margin + cell * i}" width="{cell}" '
                f'height="{cell}" fill="{colour}" stroke="#eee"><title>{escape(label)} → '
                f"{escape(labels[j])}: {value}</title></rect>"
            )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(bars: Sequence[tuple[str, float]], *, x_label: str, colour: str = "#4a7ebb") -> str:
    """Horizontal bars (label, value)."""
    height = 40 + 24 * len(bars)
    peak = _nice_max(max((v for _, v in bars), default=0))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
        f'height="{height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
    ]
    span = WIDTH - 260
    for i, (label, value) in enumerate(bars):
        y = 10 + 24 * i
        parts.append(
            f'<text x="196" y="{y + 13}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="200" y="{y}" width="{span * value / peak:.1f}" height="18" '
            f'fill="{colour}"/><text x="{204 + span * value / peak:.1f}" y="{y + 13}">'
            f"{value:g}</text>"
        )
    parts.append(f'<text x="200" y="{height - 8}">{escape(x_label)}</text></svg>')
    return "".join(parts)
