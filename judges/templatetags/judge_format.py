"""Formatting of audit estimates ({value, ci_low, ci_high, p_value}) for the judge pages."""
from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


def _num(x: Any, digits: int) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


@register.filter
def est(estimate: Any, digits: int = 3) -> str:
    """"0.612 [0.580, 0.644]"; "—" when not estimable; an open end is shown as "…"."""
    if not isinstance(estimate, dict) or estimate.get("value") is None:
        return "—"
    low, high = estimate.get("ci_low"), estimate.get("ci_high")
    interval = "" if low is None and high is None else (
        f" [{'…' if low is None else _num(low, digits)}, {'…' if high is None else _num(high, digits)}]")
    return f"{_num(estimate['value'], digits)}{interval}"


@register.filter
def pvalue(estimate: Any) -> str:
    p = estimate.get("p_value") if isinstance(estimate, dict) else None
    if p is None:
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


@register.filter
def pvalue_text(estimate: Any) -> str:
    """The p-value for prose after "p": "< 0.001" or "= 0.323"."""
    text = pvalue(estimate)
    return text if text.startswith("<") or text == "—" else f"= {text}"
