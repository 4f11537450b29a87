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


def interval_bars(rows: Sequence[SnapshotRow], *, width: float = 220.0, pad: float = 6.0) -> list[Bar | None]:
    """One bar per row on a shared axis spanning every interval; None where a row has no interval."""
    ends = [v for r in rows for v in (r.ci_low, r.ci_high, r.rating if r.mu is None else r.mu) if v is not None]
    if not ends:
        return [None for _ in rows]
    lo, hi = min(ends), max(ends)
    span = (hi - lo) or 1.0

    def x(value: float) -> float:
        return round(pad + (value - lo) / span * (width - 2 * pad), 1)

    # Bayesian rows rate by the conservative mu - 3 sigma; their interval is around mu, so mark mu.
    return [Bar(x(r.ci_low), x(r.ci_high), x(r.mu if r.mu is not None else r.rating))
            if r.ci_low is not None and r.ci_high is not None else None for r in rows]


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
    """Cells of the win-rate heatmap, models in ``order`` (the leaderboard's) on both axes."""
    index = {m: i for i, m in enumerate(models)}
    cells = []
    for r, row_model in enumerate(order):
        for c, col_model in enumerate(order):
            value = None if row_model == col_model else matrix[index[row_model]][index[col_model]]
            cells.append({"x": c * cell, "y": r * cell, "fill": _color(value),
                          "label": "" if value is None else f"{value:.2f}", "row": row_model, "col": col_model})
    return cells
