"""The audit report's SVG plots: inline-safe, accessible, deterministic, and calm about nulls. No database."""

from __future__ import annotations

import html
import re
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import matplotlib as mpl
import pytest

from judges.plots import (
    agreement_matrix_plot,
    bias_history_plot,
    length_curve_plot,
    perturbation_plot,
    position_plot,
)

NULL = {"value": None, "ci_low": None, "ci_high": None}


def est(value: float | None, low: float | None = None, high: float | None = None, *, p: float | None = None,
        n: int = 120) -> dict[str, Any]:
    """An Est as the audit writes it; the interval defaults to value ± 0.05."""
    if value is None:
        return {**NULL, "p_value": None, "n": 0}
    return {"value": value, "ci_low": value - 0.05 if low is None else low,
            "ci_high": value + 0.05 if high is None else high, "p_value": p, "n": n}


def judge_report(*, first: float = 0.62, consistency: float = 0.8) -> dict[str, Any]:
    """One judge's section of the audit output, following the schema (only what the plots read, plus a little)."""
    return {
        "judge_family": "fam", "n": 800, "n_battles": 400, "unparsed_rate": est(0.01),
        "position": {"consistency": est(consistency), "first_position_rate": est(first, p=0.003),
                     "conflict_rate": est(0.1)},
        "length": {
            "length_coef": est(0.31),
            "curve": [{"bin_low": 0.0, "bin_high": 0.2, "n": 210, "judge_rate": 0.52, "human_rate": 0.5},
                      {"bin_low": 0.2, "bin_high": 0.4, "n": 95, "judge_rate": 0.61, "human_rate": 0.53},
                      {"bin_low": 0.4, "bin_high": 0.6, "n": 37, "judge_rate": 0.7, "human_rate": None},
                      {"bin_low": 0.6, "bin_high": 1.0, "n": 8, "judge_rate": 0.88, "human_rate": 0.6}],
        },
        "agreement": {
            "accuracy": est(0.74), "kappa": est(0.43),
            "matrix": {"labels": ["a", "b", "tie"], "counts": [[131, 17, 23], [19, 127, 21], [9, 11, 4]]},
        },
        "perturbations": {
            "swap_system_prompt": {"robustness": est(0.81), "replicate_consistency": est(0.9),
                                   "difference": est(-0.09, p=0.012), "toward_perturbed": est(0.6)},
            "append_confident_claim": {"robustness": est(0.58), "replicate_consistency": est(0.9),
                                       "difference": est(-0.32, p=0.00001), "toward_perturbed": est(0.8)},
        },
    }


def audit_of(*names: str) -> dict[str, Any]:
    return {"meta": {"n_rows": 100, "judges": len(names), "seed": 0, "bootstrap": 200, "level": 0.95,
                     "length_threshold": 20, "version": 1},
            "judges": {name: judge_report(first=0.5 + i / 100) for i, name in enumerate(names)}}


HISTORY = [
    {"label": "run 3 · v1", "first_position_rate": est(0.64), "length_coef": est(0.41), "self_preference": est(0.08),
     "accuracy": est(0.7)},
    {"label": "run 12 · v2", "first_position_rate": est(0.55), "length_coef": None, "self_preference": est(0.05),
     "accuracy": est(0.73)},
    {"label": "run 19 · v3", "first_position_rate": est(0.51), "length_coef": est(0.05), "self_preference": NULL,
     "accuracy": est(0.74)},
]

# Each plot with an input it has something to draw from.
PLOTS: dict[str, Callable[[], str]] = {
    "position": lambda: position_plot(audit_of("judge-alpha", "judge-beta")),
    "length": lambda: length_curve_plot(judge_report()),
    "agreement": lambda: agreement_matrix_plot(judge_report()),
    "perturbation": lambda: perturbation_plot(judge_report()),
    "history": lambda: bias_history_plot(HISTORY),
}


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    return {name: make() for name, make in PLOTS.items()}


def texts(svg: str) -> list[str]:
    """What a reader sees: the content of every <text> element, unescaped."""
    return [html.unescape(t) for t in re.findall(r"<text\b[^>]*>([^<]*)</text>", svg)]


# --- fit to inline in a page ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PLOTS)
def test_each_plot_is_an_svg_element_ready_to_inline(rendered, name):
    svg = rendered[name]
    assert svg.startswith("<svg ")
    assert svg.rstrip().endswith("</svg>")
    assert "<?xml" not in svg and "<!DOCTYPE" not in svg


@pytest.mark.parametrize("name", PLOTS)
def test_no_script_and_no_link_leaves_the_page(rendered, name):
    svg = rendered[name]
    assert "<script" not in svg.lower()
    assert "<image" not in svg  # vector only: no embedded raster, no external image
    for url in re.findall(r"https?://[^\s\"'<>)]+", svg):
        assert url.startswith("http://www.w3.org/"), url  # only the SVG and XLink namespaces


@pytest.mark.parametrize("name", PLOTS)
def test_no_style_sheet_that_would_leak_into_the_page(rendered, name):
    assert "<style" not in rendered[name]


@pytest.mark.parametrize("name", PLOTS)
def test_each_plot_has_an_accessible_name(rendered, name):
    svg = rendered[name]
    root = svg[: svg.index(">")]
    assert 'role="img"' in root
    assert re.search(r'aria-label="[^"]{20,}"', root)
    assert re.search(r"<title>[^<]{20,}</title>", svg)


@pytest.mark.parametrize("name", PLOTS)
def test_text_stays_text(rendered, name):
    assert texts(rendered[name])  # svg.fonttype = 'none': searchable, selectable, small


def test_two_plots_on_one_page_share_no_ids(rendered):
    ids = {name: set(re.findall(r'\bid="([^"]+)"', svg)) for name, svg in rendered.items()}
    assert ids["position"] and ids["length"]
    assert not ids["position"] & ids["length"]
    # and every reference points at an id of its own SVG
    for name, svg in rendered.items():
        refs = set(re.findall(r'(?:href="#|url\(#)([^")]+)', svg))
        assert refs <= ids[name], name


# --- what each plot shows ------------------------------------------------------------------------------------------


def test_position_plot_names_every_judge():
    svg = position_plot(audit_of("gpt-4o", "claude-3-5-sonnet", "llama-3.1-70b"))
    shown = texts(svg)
    for name in ("gpt-4o", "claude-3-5-sonnet", "llama-3.1-70b"):
        assert name in shown
    assert any("no bias" in t for t in shown)


def test_judge_names_are_data_not_markup():
    name = 'gpt-$4$ <b>&"x"'  # "$...$" would be mathtext, "<b>" markup
    svg = position_plot(audit_of(name))
    assert name in texts(svg)
    assert "<b>" not in svg


def test_a_long_judge_name_is_shortened_on_the_axis_but_whole_in_the_title():
    name = "meta-llama/Meta-Llama-3.1-405B-Instruct-Turbo-" + "x" * 40
    svg = position_plot(audit_of(name))
    assert name not in texts(svg)
    assert any(t.endswith("…") and name.startswith(t[:-1]) for t in texts(svg))
    assert name in html.unescape(re.search(r"<title>([^<]*)</title>", svg).group(1))


def test_length_curve_shows_the_judgments_per_bin():
    shown = texts(length_curve_plot(judge_report()))
    for n in ("210", "95", "37", "8"):
        assert n in shown
    assert "judge" in shown and "human votes" in shown


def test_length_curve_without_human_votes_still_draws_the_judge():
    report = judge_report()
    for b in report["length"]["curve"]:
        b["human_rate"] = None
    shown = texts(length_curve_plot(report))
    assert "judge" in shown and "human votes" not in shown


def test_agreement_matrix_writes_every_count_in_its_cell():
    shown = texts(agreement_matrix_plot(judge_report()))
    for count in (131, 17, 23, 19, 127, 21, 9, 11, 4):
        assert str(count) in shown
    assert {"A", "B", "tie"} <= set(shown)


def test_the_judges_inconsistent_row_is_drawn_below_the_three_verdicts():
    report = judge_report()
    report["agreement"]["matrix"] = {"labels": ["a", "b", "tie"], "row_labels": ["a", "b", "tie", "inconsistent"],
                                     "counts": [[131, 17, 23], [19, 127, 21], [9, 11, 4], [57, 61, 8]]}
    shown = texts(agreement_matrix_plot(report))
    assert "inconsistent" in shown
    for count in (57, 61, 8):
        assert str(count) in shown


def test_perturbation_plot_names_each_perturbation_and_the_p_value_of_the_difference():
    shown = texts(perturbation_plot(judge_report()))
    assert {"swap_system_prompt", "append_confident_claim"} <= set(shown)
    assert any("p = 0.012" in t for t in shown)
    assert any("p < 0.001" in t for t in shown)


def test_perturbation_without_replicates_says_so():
    report = judge_report()
    report["perturbations"]["swap_system_prompt"]["replicate_consistency"] = est(None)
    report["perturbations"]["swap_system_prompt"]["difference"] = est(None)
    assert "no replicates" in texts(perturbation_plot(report))


def test_bias_history_labels_every_run_and_skips_metrics_with_no_value():
    svg = bias_history_plot([{**p, "self_preference": None} for p in HISTORY])
    shown = texts(svg)
    for point in HISTORY:
        assert point["label"] in shown
    titles = " ".join(shown)
    assert "First-position rate" in titles and "Accuracy" in titles
    assert "Self-preference" not in titles


# --- nulls, empties, sizes -----------------------------------------------------------------------------------------


def all_null_report() -> dict[str, Any]:
    """Every Est null, every list empty or full of nulls: what a judge with no usable rows produces."""
    return {
        "position": {"consistency": NULL, "first_position_rate": NULL, "conflict_rate": NULL},
        "length": {"length_coef": NULL, "curve": [{"bin_low": 0.0, "bin_high": 0.5, "n": 0, "judge_rate": None,
                                                   "human_rate": None}]},
        "agreement": {"accuracy": NULL, "kappa": NULL, "matrix": {"labels": ["a", "b", "tie"],
                                                                  "counts": [[0, 0, 0], [0, 0, 0], [0, 0, 0]]}},
        "perturbations": {"swap": {"robustness": NULL, "replicate_consistency": NULL, "difference": NULL}},
    }


@pytest.mark.parametrize("plot", [length_curve_plot, agreement_matrix_plot, perturbation_plot])
def test_a_judge_report_with_nothing_in_it_gives_no_plot(plot):
    assert plot(all_null_report()) == ""
    assert plot({}) == ""


def test_empty_inputs_give_no_plot():
    assert position_plot({}) == ""
    assert position_plot({"judges": {}}) == ""
    assert position_plot({"judges": {"j": all_null_report()}}) == ""
    assert length_curve_plot({"length": {"curve": []}}) == ""
    assert perturbation_plot({"perturbations": {}}) == ""
    assert bias_history_plot([]) == ""
    assert bias_history_plot([{"label": "run 1", "first_position_rate": None, "accuracy": NULL}]) == ""


def test_nulls_inside_estimates_are_skipped_not_fatal():
    report = judge_report()
    report["position"]["first_position_rate"] = {"value": 0.6, "ci_low": None, "ci_high": 0.7}  # half an interval
    report["position"]["consistency"] = NULL
    report["agreement"]["matrix"]["counts"][0][1] = None
    report["agreement"]["accuracy"] = NULL
    report["perturbations"]["swap_system_prompt"]["robustness"] = {"value": None, "ci_low": 0.1, "ci_high": 0.2}
    report["perturbations"]["append_confident_claim"]["difference"] = {"value": -0.3, "ci_low": None,
                                                                        "ci_high": None, "p_value": None}
    audit = {"judges": {"has-nulls": report, "fine": judge_report()}}
    assert "n/a" in texts(position_plot(audit))
    assert agreement_matrix_plot(report).startswith("<svg")
    assert "n/a" in texts(perturbation_plot(report))
    history = [{"label": "only", "first_position_rate": {"value": 0.5}, "accuracy": {"value": float("nan")}}]
    assert "only" in texts(bias_history_plot(history))


def test_a_ragged_matrix_is_not_drawn():
    report = judge_report()
    report["agreement"]["matrix"]["counts"] = [[1, 2, 3], [4, 5]]
    assert agreement_matrix_plot(report) == ""


def test_twenty_judges_fit_in_a_small_svg_that_grows_with_the_count():
    names = [f"judge-{i:02d}-{'x' * (i % 7)}" for i in range(20)]
    many, one = position_plot(audit_of(*names)), position_plot(audit_of(names[0]))
    assert len(many.encode()) < 150_000
    assert set(names) <= set(texts(many))

    def height(svg: str) -> float:
        return float(re.search(r'height="([\d.]+)pt"', svg).group(1))

    assert height(many) > 3 * height(one)


# --- deterministic and self-contained ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PLOTS)
def test_the_same_input_gives_the_same_bytes(rendered, name):
    assert PLOTS[name]() == rendered[name]


def test_rendering_from_several_threads_gives_the_same_bytes(rendered):
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda name: (name, PLOTS[name]()), list(PLOTS) * 2))
    for name, svg in results:
        assert svg == rendered[name], name


def test_global_matplotlib_state_is_left_alone():
    had_pyplot = "matplotlib.pyplot" in sys.modules
    # Not dict(mpl.rcParams): reading "backend" makes matplotlib import pyplot to resolve it.
    keys = ["svg.fonttype", "svg.hashsalt", "text.parse_math", "font.family", "font.size", "axes.grid"]
    before = {k: mpl.rcParams[k] for k in keys}
    position_plot(audit_of("judge-alpha"))
    assert {k: mpl.rcParams[k] for k in keys} == before
    assert ("matplotlib.pyplot" in sys.modules) == had_pyplot
