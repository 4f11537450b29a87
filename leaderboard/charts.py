"""Server-rendered SVG geometry for the leaderboard page: no chart library, nothing from a CDN."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .models import SnapshotRow


@dataclass(frozen=True)
class Bar:
    low: float   # x of the interval's ends and of the point estimate, in pixels
    high: float
    point: float
    open_low: bool = False   # the interval is unbounded on that side: the bar runs to the edge, with an arrow
    open_high: bool = False


def interval_bars(rows: Sequence[SnapshotRow], *, width: float = 220.0, pad: float = 6.0) -> list[Bar]:
    """One bar per row on an axis shared by ``rows`` (pass one component's rows: scales differ across components).

    The axis spans every point and the finite interval ends of the models that are not provisional (when
    there are any): a one-vote model's interval, hundreds of points wide, would otherwise shrink every other
    bar to a dot. An end beyond the axis, or unbounded (``None``), runs to the edge of the plot and is drawn
    open (an arrow); the numbers beside the bar say where it really ends.
    """
    def point(r: SnapshotRow) -> float:  # Bayesian rows rate by the conservative mu - 3 sigma; mark mu
        return r.mu if r.mu is not None else r.rating

    settled = [r for r in rows if not r.provisional] or list(rows)
    ends = [v for r in settled for v in (r.ci_low, r.ci_high) if v is not None] + [point(r) for r in rows]
    lo, hi = (min(ends), max(ends)) if ends else (0.0, 1.0)
    span = (hi - lo) or 1.0

    def x(value: float) -> float:
        return round(pad + (min(max(value, lo), hi) - lo) / span * (width - 2 * pad), 1)

    return [Bar(0.0 if r.ci_low is None or r.ci_low < lo else x(r.ci_low),
                width if r.ci_high is None or r.ci_high > hi else x(r.ci_high), x(point(r)),
                open_low=r.ci_low is None or r.ci_low < lo, open_high=r.ci_high is None or r.ci_high > hi)
            for r in rows]


def _color(p: float | None) -> str:
    """Diverging colour: red below 0.5, white at 0.5, blue above."""
    if p is None:
        return "#eeeeee"
    t = max(0.0, min(1.0, p))
    if t < 0.5:
        k = t / 0.5
        return f"rgb(220,{round(80 + 175 * k)},{round(80 + 175 * k)})"
    k = (t - 0.5) / 0.5
    return f"rgb({round(255 - 185 * k)},{round(255 - 135 * k)},255)"


def heatmap_cells(models: Sequence[str], matrix: Sequence[Sequence[float | None]], order: Sequence[str],
                  *, cell: int = 34) -> list[dict[str, object]]:
    """Cells of the win-rate heatmap, models in ``order`` (the leaderboard's: by component, then rank) on both axes."""
    index = {m: i for i, m in enumerate(models)}
    cells = []
    for r, row_model in enumerate(order):
        for c, col_model in enumerate(order):
            value = None if row_model == col_model else matrix[index[row_model]][index[col_model]]
            cells.append({"x": c * cell, "y": r * cell, "fill": _color(value),
                          "label": "" if value is None else f"{value:.2f}", "row": row_model, "col": col_model})
    return cells


def component_breaks(components: Sequence[int], *, cell: int = 34) -> list[float]:
    """Pixel offsets where the heatmap passes from one component to the next (``components`` in heatmap order)."""
    return [i * cell for i in range(1, len(components)) if components[i] != components[i - 1]]
