"""Charts for the run report, drawn as inline SVG in Python (no script, no download).

Each chart is one ``<svg role="img">`` with a ``<title>`` and a ``<desc>`` that reads the
plotted numbers out in words, so a screen reader (or a text search) gets the data, not a
picture of it; every point and bar carries its own ``<title>`` (a tooltip). Colours are the
Okabe-Ito palette (told apart by people with the common colour-vision deficiencies), and
every series is also told apart by its dash pattern and marker, never by colour alone.

All text that reaches the SVG is escaped here: callers pass plain strings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

__all__ = ["PALETTE", "Bar", "Line", "Reference", "bar_chart", "line_chart", "nice_ticks"]

PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#8A6100", "#56B4E9", "#000000")
"""Okabe-Ito colours (the orange darkened to keep a 4.5:1 contrast on white)."""
DASHES = ("", "6 3", "2 3", "8 3 2 3")
MARKERS = ("circle", "square", "diamond", "triangle")

WIDTH = 720
HEIGHT = 300
LEFT, RIGHT, TOP, BOTTOM = 64, 210, 16, 48
TEXT = "#1a1a1a"
GRID = "#d0d0d0"


@dataclass(frozen=True)
class Line:
    """One plotted series: ``points`` are ``(x, y)``; a ``None`` y is a gap."""

    name: str
    points: Sequence[tuple[float, float | None]]


@dataclass(frozen=True)
class Reference:
    """A horizontal reference line (a baseline, a budget)."""

    name: str
    value: float


@dataclass(frozen=True)
class Bar:
    """One series of a grouped bar chart: a value per group (``None``: not measured)."""

    name: str
    values: Sequence[float | None]
    labels: Sequence[str] = field(default_factory=tuple)


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000 or magnitude < 0.001:
        return f"{value:.3g}"
    return f"{value:.4g}"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering ``[low, high]`` (1, 2 or 5 times a power of ten apart)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("tick bounds must be finite")
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value < high + step * 0.5:
        ticks.append(round(value, 12))
        value += step
    return ticks


class _Frame:
    """Maps data to pixels inside the plot area."""

    def __init__(self, xs: Sequence[float], ys: Sequence[float], *, y_from_zero: bool) -> None:
        x_lo, x_hi = min(xs), max(xs)
        if x_hi == x_lo:
            x_lo, x_hi = x_lo - 1, x_hi + 1
        y_lo, y_hi = min(ys), max(ys)
        if y_from_zero:
            y_lo = min(0.0, y_lo)
        self.yticks = nice_ticks(y_lo, y_hi)
        self.x_lo, self.x_hi = x_lo, x_hi
        self.y_lo, self.y_hi = self.yticks[0], self.yticks[-1]
        if self.y_hi == self.y_lo:
            self.y_hi = self.y_lo + 1
        self.w = WIDTH - LEFT - RIGHT
        self.h = HEIGHT - TOP - BOTTOM

    def x(self, value: float) -> float:
        return LEFT + (value - self.x_lo) / (self.x_hi - self.x_lo) * self.w

    def y(self, value: float) -> float:
        return TOP + self.h - (value - self.y_lo) / (self.y_hi - self.y_lo) * self.h


def _open(chart_id: str, title: str, desc: str) -> list[str]:
    return [
        f'<svg role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="100%" style="max-width:{WIDTH}px" aria-labelledby="{chart_id}-t {chart_id}-d" '
        f'id="{chart_id}" class="chart" font-family="system-ui, sans-serif" font-size="12">',
        f'<title id="{chart_id}-t">{escape(title)}</title>',
        f'<desc id="{chart_id}-d">{escape(desc)}</desc>',
    ]


def _y_axis(frame: _Frame, y_label: str) -> list[str]:
    out = []
    for tick in frame.yticks:
        y = frame.y(tick)
        out.append(
            f'<line x1="{LEFT}" x2="{LEFT + frame.w}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
        )
        out.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{TEXT}">'
            f"{_fmt(tick)}</text>"
        )
    mid = TOP + frame.h / 2
    out.append(
        f'<text x="14" y="{mid:.1f}" transform="rotate(-90 14 {mid:.1f})" text-anchor="middle" '
        f'fill="{TEXT}">{escape(y_label)}</text>'
    )
    return out


def _marker(kind: str, x: float, y: float, colour: str, tip: str) -> str:
    tip_el = f"<title>{escape(tip)}</title>"
    if kind == "square":
        shape = f'<rect x="{x - 3.5:.1f}" y="{y - 3.5:.1f}" width="7" height="7" fill="{colour}">'
        return shape + tip_el + "</rect>"
    if kind == "diamond":
        pts = f"{x:.1f},{y - 5:.1f} {x + 5:.1f},{y:.1f} {x:.1f},{y + 5:.1f} {x - 5:.1f},{y:.1f}"
        return f'<polygon points="{pts}" fill="{colour}">{tip_el}</polygon>'
    if kind == "triangle":
        pts = f"{x:.1f},{y - 5:.1f} {x + 5:.1f},{y + 4:.1f} {x - 5:.1f},{y + 4:.1f}"
        return f'<polygon points="{pts}" fill="{colour}">{tip_el}</polygon>'
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}">{tip_el}</circle>'


def _legend(entries: Sequence[tuple[str, str, str]]) -> list[str]:
    """``(name, colour, dash)`` entries at the right of the plot."""
    out = []
    x = WIDTH - RIGHT + 14
    for i, (name, colour, dash) in enumerate(entries):
        y = TOP + 10 + i * 18
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(
            f'<line x1="{x}" x2="{x + 22}" y1="{y}" y2="{y}" stroke="{colour}" '
            f'stroke-width="2.5"{dash_attr}/>'
        )
        label = name if len(name) <= 28 else name[:27] + "…"
        out.append(f'<text x="{x + 28}" y="{y + 4}" fill="{TEXT}">{escape(label)}</text>')
    return out


def line_chart(
    chart_id: str,
    title: str,
    lines: Sequence[Line],
    *,
    x_label: str,
    y_label: str,
    references: Sequence[Reference] = (),
    y_from_zero: bool = False,
    x_labels: dict[float, str] | None = None,
) -> str:
    """A line chart; ``references`` are drawn as dashed horizontal lines.

    Raises:
        ValueError: nothing to plot (no finite point).
    """
    xs = [x for line in lines for x, y in line.points if y is not None and math.isfinite(y)]
    ys = [y for line in lines for _, y in line.points if y is not None and math.isfinite(y)]
    ys += [r.value for r in references if math.isfinite(r.value)]
    if not xs:
        raise ValueError(f"chart {title!r} has no finite point to plot")
    frame = _Frame(xs, ys, y_from_zero=y_from_zero)
    words = []
    for line in lines:
        pts = ", ".join(f"{_fmt(x)}: {_fmt(y)}" for x, y in line.points if y is not None)
        words.append(f"{line.name} ({x_label} {pts})")
    words += [f"{r.name}: {_fmt(r.value)}" for r in references]
    out = _open(chart_id, title, "; ".join(words) + ".")
    out += _y_axis(frame, y_label)
    for tick in sorted(set(xs)) if len(set(xs)) <= 12 else nice_ticks(min(xs), max(xs)):
        if not frame.x_lo <= tick <= frame.x_hi:
            continue
        x = frame.x(tick)
        text = (x_labels or {}).get(tick, _fmt(tick))
        out.append(
            f'<text x="{x:.1f}" y="{TOP + frame.h + 16}" text-anchor="middle" fill="{TEXT}">'
            f"{escape(text)}</text>"
        )
    out.append(
        f'<text x="{LEFT + frame.w / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle" '
        f'fill="{TEXT}">{escape(x_label)}</text>'
    )
    out.append(
        f'<line x1="{LEFT}" x2="{LEFT + frame.w}" y1="{TOP + frame.h}" y2="{TOP + frame.h}" '
        f'stroke="{TEXT}"/>'
    )
    legend: list[tuple[str, str, str]] = []
    for i, line in enumerate(lines):
        colour, dash, marker = PALETTE[i % 7], DASHES[i % 4], MARKERS[i % 4]
        legend.append((line.name, colour, dash))
        segments: list[list[tuple[float, float]]] = [[]]
        for x, y in line.points:
            if y is None or not math.isfinite(y):
                segments.append([])
            else:
                segments[-1].append((x, y))
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        for seg in segments:
            if len(seg) > 1:
                pts = " ".join(f"{frame.x(x):.1f},{frame.y(y):.1f}" for x, y in seg)
                out.append(
                    f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2.5"'
                    f"{dash_attr}/>"
                )
            for x, y in seg:
                tip = f"{line.name}: {x_label} {_fmt(x)}, {y_label} {_fmt(y)}"
                out.append(_marker(marker, frame.x(x), frame.y(y), colour, tip))
    for j, ref in enumerate(references):
        colour = PALETTE[(len(lines) + j) % 7]
        y = frame.y(ref.value)
        legend.append((ref.name, colour, "4 4"))
        out.append(
            f'<line x1="{LEFT}" x2="{LEFT + frame.w}" y1="{y:.1f}" y2="{y:.1f}" stroke="{colour}" '
            f'stroke-width="2" stroke-dasharray="4 4"><title>{escape(ref.name)}: '
            f"{_fmt(ref.value)}</title></line>"
        )
    out += _legend(legend)
    out.append("</svg>")
    return "\n".join(out)


def bar_chart(
    chart_id: str, title: str, groups: Sequence[str], bars: Sequence[Bar], *, y_label: str
) -> str:
    """A grouped bar chart from zero: one group per entry of ``groups``, one bar per series.

    Raises:
        ValueError: nothing to plot, or a series whose length differs from ``groups``.
    """
    if any(len(bar.values) != len(groups) for bar in bars):
        raise ValueError("every bar series needs one value per group")
    values = [v for bar in bars for v in bar.values if v is not None and math.isfinite(v)]
    if not values:
        raise ValueError(f"chart {title!r} has no finite value to plot")
    frame = _Frame([0.0, float(len(groups))], [0.0, *values], y_from_zero=True)
    words = [
        f"{bar.name}: "
        + ", ".join(
            f"{g} {_fmt(v) if v is not None else 'not measured'}"
            for g, v in zip(groups, bar.values, strict=True)
        )
        for bar in bars
    ]
    out = _open(chart_id, title, "; ".join(words) + ".")
    out += _y_axis(frame, y_label)
    slot = frame.w / len(groups)
    width = slot * 0.8 / max(1, len(bars))
    legend = []
    for i, bar in enumerate(bars):
        colour = PALETTE[i % 7]
        legend.append((bar.name, colour, ""))
        for g, value in enumerate(bar.values):
            if value is None or not math.isfinite(value):
                continue
            x = LEFT + g * slot + slot * 0.1 + i * width
            top = frame.y(max(value, 0.0))
            height = frame.y(min(value, 0.0)) - top
            out.append(
                f'<rect x="{x:.1f}" y="{top:.1f}" width="{width:.1f}" height="{height:.1f}" '
                f'fill="{colour}"><title>{escape(bar.name)}, {escape(groups[g])}: '
                f"{_fmt(value)}</title></rect>"
            )
    for g, name in enumerate(groups):
        x = LEFT + g * slot + slot / 2
        room = max(4, int(slot / 7))  # about 7 px a character at 12 px
        label = name if len(name) <= room else name[: room - 1] + "…"
        out.append(
            f'<text x="{x:.1f}" y="{TOP + frame.h + 16}" text-anchor="middle" fill="{TEXT}">'
            f"{escape(label)}</text>"
        )
    out.append(
        f'<line x1="{LEFT}" x2="{LEFT + frame.w}" y1="{frame.y(0):.1f}" y2="{frame.y(0):.1f}" '
        f'stroke="{TEXT}"/>'
    )
    out += _legend(legend)
    out.append("</svg>")
    return "\n".join(out)
