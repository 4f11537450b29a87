"""Judge pages: the judges with their latest audit, one judge's biases across runs, and an audit's report."""
from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.safestring import mark_safe

from .models import Audit, Judge
from .selectors import judge_audits, judges_with_latest_audit


def _plots() -> Any:
    # Imported on use: matplotlib costs ~0.5 s to import, which the voting pages must not pay.
    from . import plots

    return plots


def _judge_report(audit: Audit) -> dict[str, Any]:
    """The report section of the audit's judge (an audit covers one run, hence one judge)."""
    judges = audit.report.get("judges", {})
    return judges.get(audit.run.judge.name) or next(iter(judges.values()), {})


# Audits never change, so their plots (~0.8 s to draw) are drawn once and cached; bump this when plots.py
# changes what it draws.
PLOTS_VERSION = 2


def _audit_plots(audit: Audit, report: dict[str, Any]) -> dict[str, str]:
    plots = _plots()
    judge = audit.run.judge.name
    return {
        "position": plots.position_plot(audit.report),
        "length": plots.length_curve_plot(report, judge=judge),
        "agreement": plots.agreement_matrix_plot(report, judge=judge),
        "perturbations": plots.perturbation_plot(report, judge=judge),
    }


def judges_page(request: HttpRequest) -> HttpResponse:
    rows = [(judge, latest, _judge_report(latest) if latest else None) for judge, latest in judges_with_latest_audit()]
    return render(request, "judges/judges.html", {"rows": rows})


def judge_page(request: HttpRequest, name: str) -> HttpResponse:
    judge = get_object_or_404(Judge, name=name)
    audits = judge_audits(judge)
    points = []
    for audit in audits:
        report = _judge_report(audit)
        points.append({
            "label": f"run {audit.run_id} · {audit.run.template_version}",
            "first_position_rate": report.get("position", {}).get("first_position_rate"),
            "length_coef": report.get("length", {}).get("length_coef"),
            "self_preference": report.get("self_preference", {}).get("self_preference"),
            "accuracy": report.get("agreement", {}).get("accuracy"),
        })
    history = mark_safe(_plots().bias_history_plot(points)) if points else ""
    return render(request, "judges/judge.html", {
        "judge": judge, "rows": list(zip(audits, points, strict=True))[::-1], "history": history,
        "runs": judge.runs.order_by("-created")[:50],
    })


def audit_page(request: HttpRequest, audit_id: int) -> HttpResponse:
    audit = get_object_or_404(Audit.objects.select_related("run__judge"), pk=audit_id)
    report = _judge_report(audit)
    svg = cache.get_or_set(f"judges:audit-plots:{audit.pk}:{PLOTS_VERSION}", lambda: _audit_plots(audit, report),
                           timeout=None)
    return render(request, "judges/audit.html", {
        "audit": audit, "run": audit.run, "judge": audit.run.judge, "r": report,
        "svg": {name: mark_safe(value) for name, value in svg.items()},
        "lc_rows": sorted((report.get("length", {}).get("lc_win_rate") or {}).items(),
                          key=lambda item: -((item[1].get("lc_win_rate") or {}).get("value") or 0)),
        "categories": sorted((report.get("agreement", {}).get("by_category") or {}).items()),
        "perturbations": sorted((report.get("perturbations") or {}).items()),
    })
