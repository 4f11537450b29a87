"""Server-rendered SVG geometry for the training-job page (loss and reward-accuracy curves): no chart library."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Curve:
    label: str           # "train" or "eval"
    points: str          # SVG polyline points "x,y x,y ..."
    last: float          # the latest value, for the legend


@dataclass(frozen=True)
class Chart:
    title: str
    curves: list[Curve]
    y_low: float
    y_high: float
    x_high: int          # the last step shown


def metric_chart(metrics: Sequence[dict[str, Any]], key: str, title: str, *, width: float = 420.0,
                 height: float = 160.0, pad: float = 8.0) -> Chart | None:
    """Train and eval curves of ``key`` against the step, on shared axes; None when nothing was logged."""
    series: dict[str, list[tuple[int, float]]] = {"train": [], "eval": []}
    for line in metrics:
        value, step = line.get(key), line.get("step")
        if line.get("split") in series and isinstance(value, int | float) and isinstance(step, int):
            series[line["split"]].append((step, float(value)))
    values = [v for points in series.values() for _, v in points]
    if not values:
        return None
    steps = [s for points in series.values() for s, _ in points]
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    x_high = max(steps) or 1

    def xy(step: int, value: float) -> str:
        x = pad + step / x_high * (width - 2 * pad)
        y = height - pad - (value - lo) / span * (height - 2 * pad)
        return f"{x:.1f},{y:.1f}"

    curves = [Curve(label=split, points=" ".join(xy(s, v) for s, v in sorted(points)), last=sorted(points)[-1][1])
              for split, points in series.items() if points]
    return Chart(title=title, curves=curves, y_low=lo, y_high=hi, x_high=x_high)
