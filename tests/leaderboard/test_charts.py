"""The page's interval bars: one axis per component, set by the models whose intervals mean something."""
from __future__ import annotations

from types import SimpleNamespace

from leaderboard.charts import interval_bars


def _row(rating: float, low: float | None, high: float | None, *, provisional: bool = False) -> SimpleNamespace:
    return SimpleNamespace(rating=rating, ci_low=low, ci_high=high, mu=None, provisional=provisional)


def test_a_provisional_interval_does_not_set_the_axis_and_runs_off_it_open():
    rows = [_row(1100, 1090, 1110), _row(1000, 990, 1010), _row(1050, 400, 1700, provisional=True)]
    settled_a, settled_b, thin = interval_bars(rows, width=220, pad=6)
    # The axis spans 990..1110: the settled bars keep their width instead of shrinking to dots.
    assert (settled_a.low, settled_a.high) == (round(6 + 100 / 120 * 208, 1), 214.0)
    assert (settled_b.low, settled_b.point) == (6.0, round(6 + 10 / 120 * 208, 1))
    assert (thin.low, thin.high, thin.open_low, thin.open_high) == (0.0, 220, True, True)
    assert thin.point == round(6 + 60 / 120 * 208, 1)


def test_unbounded_ends_are_open_and_an_all_provisional_table_uses_all_intervals():
    first, second = interval_bars([_row(900, None, 950, provisional=True), _row(1000, 960, 1040, provisional=True)])
    assert first.open_low and not first.open_high and first.low == 0.0
    assert (second.low, second.high) == (round(6 + 60 / 140 * 208, 1), 214.0)  # axis 900..1040
