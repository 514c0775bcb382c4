"""Charts drawn on the server as inline SVG: no script, nothing loaded from elsewhere.

Each function returns markup safe to put in a template. The SVG scales to its container
(viewBox, CSS width 100%); colours come from the stylesheet through the `series-N` classes,
so they follow the light and dark themes. Legends are HTML next to the chart (translatable,
and they wrap on a phone).
"""

from __future__ import annotations

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 480, 220
LEFT, RIGHT, TOP, BOTTOM = 52, 14, 12, 30


def _nice_max(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^n at or above value (an axis top)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1) if value >= 1 else 1.0
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _f(value: float) -> str:
    return f"{value:.1f}"


def _number(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}".removesuffix(".0") + "M"
    if value >= 1_000:
        return f"{value / 1_000:.1f}".removesuffix(".0") + "k"
    return f"{round(value, 1):g}"


def line_chart(*, labels: list[str], series: list[tuple[str, list[float | None]]], title: str) -> SafeString:
    """One line per series over the x labels (e.g. days). `series`: [(name, values)] with one
    value per label; None leaves a gap. `title` names the chart for screen readers (the unit
    belongs in it: the axis shows bare numbers)."""
    points_count = max(1, len(labels))
    top = _nice_max(max((v for _, values in series for v in values if v is not None), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(index: int) -> float:
        return LEFT + (plot_w * index / (points_count - 1) if points_count > 1 else plot_w / 2)

    def y(value: float) -> float:
        return TOP + plot_h * (1 - value / top)

    parts = []
    for fraction in (0, 0.5, 1):
        level = top * fraction
        parts.append(format_html(
            '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"/>'
            '<text class="axis" x="{}" y="{}" text-anchor="end">{}</text>',
            LEFT, WIDTH - RIGHT, _f(y(level)), _f(y(level)), LEFT - 6, _f(y(level) + 4), _number(level)))
    shown = {0, points_count - 1, (points_count - 1) // 2}
    for index, label in enumerate(labels):
        if index in shown:
            anchor = "start" if index == 0 else "end" if index == points_count - 1 else "middle"
            parts.append(format_html('<text class="axis" x="{}" y="{}" text-anchor="{}">{}</text>',
                                     _f(x(index)), HEIGHT - 8, anchor, label))
    for number, (name, values) in enumerate(series):
        runs, run = [], []
        for index, value in enumerate(values):
            if value is None:
                if run:
                    runs.append(run)
                run = []
            else:
                run.append((x(index), y(value)))
        if run:
            runs.append(run)
        for run in runs:
            if len(run) == 1:
                parts.append(format_html('<circle class="series-{}" cx="{}" cy="{}" r="3"><title>{}</title>'
                                         '</circle>', number % 8, _f(run[0][0]), _f(run[0][1]), name))
            else:
                path = " ".join(f"{px:.1f},{py:.1f}" for px, py in run)
                parts.append(format_html('<polyline class="series-{}" points="{}"><title>{}</title></polyline>',
                                         number % 8, path, name))
    body = mark_safe("".join(parts))
    return format_html(
        '<figure class="chart"><svg viewBox="0 0 {} {}" role="img" aria-label="{}">{}'
        '</svg>{}</figure>', WIDTH, HEIGHT, title, body, _legend([name for name, _ in series]))


def bar_chart(*, items: list[tuple[str, float]], title: str, unit: str = "") -> SafeString:
    """Horizontal bars, one per (label, value), longest first as given."""
    row, gap = 30, 8
    height = max(1, len(items)) * (row + gap)
    top = _nice_max(max((value for _, value in items), default=0))
    label_w, plot_w = 150, WIDTH - 150 - 60
    parts = []
    for index, (label, value) in enumerate(items):
        y = index * (row + gap)
        width = plot_w * value / top
        short = label if len(label) <= 16 else label[:15] + "…"
        parts.append(format_html(
            '<text class="axis" x="{}" y="{}" text-anchor="end">{}</text>'
            '<rect class="series-0" x="{}" y="{}" width="{}" height="{}"><title>{}</title></rect>'
            '<text class="axis" x="{}" y="{}">{}</text>',
            label_w - 8, _f(y + row / 2 + 4), short, label_w, y, _f(max(width, 1)), row, label,
            _f(label_w + width + 6), _f(y + row / 2 + 4), _number(value) + unit))
    return format_html('<figure class="chart"><svg viewBox="0 0 {} {}" role="img" aria-label="{}">{}</svg></figure>',
                       WIDTH, height, title, mark_safe("".join(parts)))


def _legend(names: list[str]) -> SafeString:
    return format_html('<ul class="chart-legend">{}</ul>', format_html_join(
        "", '<li><span class="swatch series-{}"></span>{}</li>', ((number % 8, name) for number, name in enumerate(names))))
