"""Inline SVG charts for the audit report: labelled axes with round-number ticks, and a legend beside
the plot, never over it.

Every chart has the same frame: a plot area (``<rect class="plot">``, its bars and points
``class="mark"``) with a y axis of evenly spaced ticks at round numbers, a categorical x axis
(rounds, or participants), and the legend (``<g class="legend">``) in a column of its own to the
right of the plot area.
"""

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

WIDTH, HEIGHT = 600, 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 160, 30, 52
_PLOT_X0, _PLOT_X1 = _LEFT, WIDTH - _RIGHT
_PLOT_Y0, _PLOT_Y1 = _TOP, HEIGHT - _BOTTOM
#: The most x tick labels an axis of rounds shows; past it they go in steps of 2, 5, 10, 20, 50 ...
MAX_ROUND_LABELS = 12


@dataclass(frozen=True)
class Series:
    """One named, coloured series of a chart: a value per x category (``None`` where there is none)."""

    name: str
    colour: str
    values: Sequence[float | None]


def escape(value: object) -> str:
    return html.escape(str(value))


def nice_ticks(top: float, integer: bool = False, count: int = 5) -> list[float]:
    """Ticks from 0 to at least ``top`` in a step of 1, 2, 2.5 or 5 times a power of ten, about
    ``count`` of them (a whole step at least when ``integer``); ``top <= 0`` is taken as 1."""
    top = top if top > 0 else 1.0
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(factor * magnitude for factor in (1, 2, 2.5, 5, 10) if factor * magnitude >= raw)
    if integer:
        step = max(1.0, math.ceil(step))
    return [round(index * step, 12) for index in range(math.ceil(top / step - 1e-9) + 1)]


def round_step(rounds: int) -> int:
    """The step between labelled rounds: every round up to ``MAX_ROUND_LABELS``, else the smallest
    of 2, 5, 10, 20, 50, 100 ... that keeps the labels within it."""
    step, factors = 1, (2, 5, 10)
    magnitude = 1
    while math.ceil(rounds / step) > MAX_ROUND_LABELS:
        for factor in factors:
            step = factor * magnitude
            if math.ceil(rounds / step) <= MAX_ROUND_LABELS:
                break
        magnitude *= 10
    return step


def round_labels(rounds: int) -> list[str]:
    """The x labels of an axis of rounds 1..``rounds``: round 1 and every ``round_step``-th round,
    the others blank."""
    step = round_step(rounds)
    return [str(number) if number == 1 or number % step == 0 else "" for number in range(1, rounds + 1)]


def format_tick(value: float) -> str:
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if abs(value) >= 10_000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


class Chart:
    """One SVG chart over x categories, built up by ``bars``/``line`` and closed by ``svg``."""

    def __init__(self, title: str, categories: Sequence[str], y_label: str, x_label: str = "round") -> None:
        """``categories``: the full name of each x position (for tooltips)."""
        self.title, self.categories, self.y_label, self.x_label = title, list(categories), y_label, x_label
        self.band = (_PLOT_X1 - _PLOT_X0) / max(len(self.categories), 1)
        self.parts: list[str] = []
        self.legend: list[tuple[str, str, str]] = []
        self.ticks: list[float] = [0.0, 1.0]

    def scale(self, top: float, integer: bool = False) -> None:
        """Set the y axis to run from 0 to the nice tick at or above ``top``."""
        self.ticks = nice_ticks(top, integer)

    def _x(self, index: int) -> float:
        return _PLOT_X0 + self.band * (index + 0.5)

    def _y(self, value: float) -> float:
        return _PLOT_Y1 - value / self.ticks[-1] * (_PLOT_Y1 - _PLOT_Y0)

    def shade(self, indices: Sequence[int], name: str, colour: str = "#eceff1") -> None:
        """A background band behind the x positions ``indices`` (such as rounds never committed)."""
        for index in indices:
            x = _PLOT_X0 + self.band * index
            self.parts.append(
                f'<rect class="shade" x="{x:.1f}" y="{_PLOT_Y0}" width="{self.band:.1f}" '
                f'height="{_PLOT_Y1 - _PLOT_Y0}" fill="{colour}"><title>{escape(self.categories[index])}: '
                f"{escape(name)}</title></rect>"
            )
        if indices:
            self.legend.append((name, colour, "box"))

    def bars(self, series: Sequence[Series], unit: str = "") -> None:
        """Stacked bars, one stack per x position; a missing value draws nothing."""
        width = max(self.band * 0.7, 1.0)
        for index, category in enumerate(self.categories):
            base = 0.0
            for one in series:
                value = one.values[index]
                if not value:
                    continue
                top = base + value
                self.parts.append(
                    f'<rect class="mark" x="{self._x(index) - width / 2:.1f}" y="{self._y(top):.1f}" '
                    f'width="{width:.1f}" height="{self._y(base) - self._y(top):.1f}" fill="{one.colour}">'
                    f"<title>{escape(category)} {escape(one.name)}: {value:,.6g}{unit}</title></rect>"
                )
                base = top
        self.legend.extend((one.name, one.colour, "box") for one in series)

    def line(self, series: Series) -> None:
        """A line through the known values, with a marker on each."""
        points = [
            (self._x(index), self._y(value), index) for index, value in enumerate(series.values) if value is not None
        ]
        if points:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in points)
            self.parts.append(f'<polyline points="{path}" fill="none" stroke="{series.colour}" stroke-width="2"/>')
        for x, y, index in points:
            self.parts.append(
                f'<circle class="mark" cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{series.colour}"><title>'
                f"{escape(self.categories[index])}: {series.values[index]:.4f}</title></circle>"
            )
        self.legend.append((series.name, series.colour, "line"))

    def _axes(self, labels: Sequence[str]) -> list[str]:
        middle_x, middle_y = (_PLOT_X0 + _PLOT_X1) / 2, (_PLOT_Y0 + _PLOT_Y1) / 2
        parts = [
            f'<text x="{WIDTH / 2}" y="18" text-anchor="middle" font-weight="bold" font-size="13">'
            f"{escape(self.title)}</text>",
            f'<rect class="plot" x="{_PLOT_X0}" y="{_PLOT_Y0}" width="{_PLOT_X1 - _PLOT_X0}" '
            f'height="{_PLOT_Y1 - _PLOT_Y0}" fill="white" stroke="#bbb"/>',
        ]
        for tick in self.ticks:
            y = self._y(tick)
            parts.append(f'<line x1="{_PLOT_X0 - 4}" y1="{y:.1f}" x2="{_PLOT_X1}" y2="{y:.1f}" stroke="#e4e4e4"/>')
            parts.append(
                f'<text class="y-tick" x="{_PLOT_X0 - 7}" y="{y + 3.5:.1f}" text-anchor="end" font-size="10">'
                f"{format_tick(tick)}</text>"
            )
        rotate = len([label for label in labels if label]) > 8 and max(map(len, labels), default=0) > 3
        for index, label in enumerate(labels):
            if not label:
                continue
            x, y = self._x(index), _PLOT_Y1 + 14
            parts.append(f'<line x1="{x:.1f}" y1="{_PLOT_Y1}" x2="{x:.1f}" y2="{_PLOT_Y1 + 4}" stroke="#555"/>')
            turn = f' transform="rotate(-30 {x:.1f} {y})"' if rotate else ""
            anchor = "end" if rotate else "middle"
            parts.append(
                f'<text class="x-tick" x="{x:.1f}" y="{y}" text-anchor="{anchor}" font-size="10"{turn}>'
                f"{escape(label)}</text>"
            )
        parts += [
            f'<line x1="{_PLOT_X0}" y1="{_PLOT_Y1}" x2="{_PLOT_X1}" y2="{_PLOT_Y1}" stroke="#555"/>',
            f'<line x1="{_PLOT_X0}" y1="{_PLOT_Y0}" x2="{_PLOT_X0}" y2="{_PLOT_Y1}" stroke="#555"/>',
            f'<text class="x-label" x="{middle_x}" y="{HEIGHT - 6}" text-anchor="middle" font-size="11">'
            f"{escape(self.x_label)}</text>",
            f'<text class="y-label" x="16" y="{middle_y}" font-size="11" text-anchor="middle" '
            f'transform="rotate(-90 16 {middle_y})">{escape(self.y_label)}</text>',
        ]
        return parts

    def _legend(self) -> str:
        x = _PLOT_X1 + 14
        items = []
        for position, (name, colour, kind) in enumerate(self.legend):
            y = _PLOT_Y0 + 6 + 18 * position
            swatch = (
                f'<line x1="{x}" y1="{y + 5}" x2="{x + 14}" y2="{y + 5}" stroke="{colour}" stroke-width="3"/>'
                if kind == "line"
                else f'<rect x="{x}" y="{y}" width="12" height="12" fill="{colour}" stroke="#333" stroke-width="0.6"/>'
            )
            items.append(f'{swatch}<text x="{x + 19}" y="{y + 10}" font-size="11">{escape(name)}</text>')
        return f'<g class="legend">{"".join(items)}</g>'

    def svg(self, labels: Sequence[str] | None = None) -> str:
        """The chart; ``labels`` are the x tick labels (blank: no tick), default every category."""
        labels = self.categories if labels is None else labels
        body = "".join(self._axes(labels) + self.parts) + self._legend()
        return (
            f'<svg class="chart" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
            f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(self.title)}">{body}</svg>'
        )
