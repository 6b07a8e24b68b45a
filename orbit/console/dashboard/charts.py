"""Charts as geometry: numbers in, rectangles and labels out, drawn by templates as inline SVG.

No JavaScript and no markup built here: templates write the SVG and escape every label, and
colours come from CSS classes, so the admin's light and dark themes apply.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

WIDTH = 600
HEIGHT = 200
LEFT = 40  # room for the y-axis labels
BOTTOM = 22  # room for the x-axis labels
TOP = 10
RIGHT = 8


@dataclass(frozen=True)
class Segment:
    y: float
    height: float
    css: str
    title: str
    href: str = ""  # the runs this segment counts, when the chart knows where they are


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    segments: tuple[Segment, ...]
    title: str


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass
class BarChart:
    """A bar chart ready to draw: bars, y gridlines and x labels in viewBox units."""

    title: str
    bars: list[Bar]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    legend: list[tuple[str, str]] = field(default_factory=list)  # (css class, label)
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    bottom_y: int = HEIGHT - BOTTOM
    right_x: int = WIDTH - RIGHT
    empty: bool = False

    @property
    def view_box(self) -> str:
        return f"0 0 {self.width} {self.height}"

    @property
    def center_x(self) -> float:
        return (self.left + self.right_x) / 2


def count_scale(value: float, most_ticks: int = 4) -> tuple[int, int]:
    """(top, step) of an axis of counts: whole-number ticks 0, step, ..., top, at most
    `most_ticks` steps, step being 1, 2 or 5 times a power of ten (a count of 25 reads
    0-10-20-30, never 6.25 and 18.75)."""
    step = 1
    while step * most_ticks < value:
        step = _next_nice(step)
    top = max(step, -(-math.ceil(value) // step) * step)
    return top, step


def _next_nice(step: int) -> int:
    """1 -> 2 -> 5 -> 10 -> 20 -> 50 -> 100 ..."""
    magnitude: int = 10 ** (len(str(step)) - 1)
    following = {1: 2, 2: 5, 5: 10}
    return following[step // magnitude] * magnitude


def _y_ticks(top_value: int, step: int) -> list[Tick]:
    plot = HEIGHT - BOTTOM - TOP
    ticks = []
    for value in range(0, top_value + 1, step):
        label = str(value) if value < 1000 else f"{value / 1000:g}k"
        ticks.append(
            Tick(position=round(HEIGHT - BOTTOM - plot * value / top_value, 2), label=label)
        )
    return ticks


def stacked_bars(
    title: str,
    columns: Sequence[tuple[str, dict[str, int]]],
    series: Sequence[tuple[str, str]],
    *,
    label_every: int = 1,
    links: Sequence[str] | None = None,
) -> BarChart:
    """One bar per column, stacked by series (`(key, label)` pairs, drawn bottom-up).

    `columns` are `(label, {series key: count})`; every `label_every`-th label is shown.
    `links`, one per column, is the address of the runs a column counts: each segment
    links there with `&status=<its series key>`.
    """
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - BOTTOM - TOP
    totals = [sum(values.get(key, 0) for key, _ in series) for _, values in columns]
    top_value, step = count_scale(max(totals, default=0))
    slot = plot_width / max(len(columns), 1)
    gap = min(2.0, slot * 0.2)
    bars, x_ticks = [], []
    for index, (label, values) in enumerate(columns):
        x = LEFT + index * slot
        base = float(HEIGHT - BOTTOM)
        segments = []
        for key, name in series:
            count = values.get(key, 0)
            if not count:
                continue
            height = plot_height * count / top_value
            base -= height
            segments.append(
                Segment(
                    y=round(base, 2),
                    height=round(height, 2),
                    css=f"bar-{key}",
                    title=f"{label}: {count} {name.lower()}",
                    href=f"{links[index]}&status={key}" if links else "",
                )
            )
        summary = ", ".join(f"{values.get(k, 0)} {n.lower()}" for k, n in series if values.get(k))
        bars.append(
            Bar(
                x=round(x + gap / 2, 2),
                width=round(slot - gap, 2),
                segments=tuple(segments),
                title=f"{label}: {summary or 'none'}",
            )
        )
        if index % label_every == 0:
            x_ticks.append(Tick(position=round(x + slot / 2, 2), label=label))
    return BarChart(
        title=title,
        bars=bars,
        y_ticks=_y_ticks(top_value, step),
        x_ticks=x_ticks,
        legend=[(f"bar-{key}", name) for key, name in series],
        empty=not any(totals),
    )


def histogram(
    title: str, buckets: Sequence[tuple[str, int]], css: str = "bar-duration"
) -> BarChart:
    """One bar per bucket (`(label, count)`), such as the distribution of run durations."""
    chart = stacked_bars(
        title, [(label, {"n": count}) for label, count in buckets], [("n", "runs")]
    )
    chart.bars = [
        Bar(
            x=bar.x,
            width=bar.width,
            title=bar.title,
            segments=tuple(Segment(s.y, s.height, css, s.title) for s in bar.segments),
        )
        for bar in chart.bars
    ]
    chart.legend = []
    return chart
