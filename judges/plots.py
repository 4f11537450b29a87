"""Server-side SVG plots for the judge audit report.

Each public function takes a piece of the audit JSON (see the audit schema: ``Est`` is
``{"value", "ci_low", "ci_high"}`` plus optional ``"p_value"``/``"n"``, any of them null) and returns an SVG string
that a template can inline with ``|safe``, or ``""`` when there is nothing to plot. Nothing is written to disk and
nothing is fetched: no script, no external reference, text stays text (``svg.fonttype = 'none'``).

Only the object-oriented API is used (``Figure`` + the SVG canvas, never ``pyplot``): pyplot keeps a global figure
registry and selects a process-wide backend, neither of which belongs in a web process. The same input gives
byte-identical output (fixed hash salt, no date or creator metadata), so tests may compare SVGs.

No Django imports here: the CLI and the tests use this module as it is.
"""

from __future__ import annotations

import hashlib
import html
import io
import math
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import numpy as np
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure
from matplotlib.patches import Patch

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "agreement_matrix_plot",
    "bias_history_plot",
    "length_curve_plot",
    "perturbation_plot",
    "position_plot",
]

ACCENT = "#2166ac"  # the judge, everywhere
HUMAN = "#8a8a8a"  # human votes, and baselines the judge is compared against
INK = "#333333"
MUTED = "#777777"
REFERENCE = "#9a9a9a"  # "no bias" lines

_RC: dict[str, Any] = {
    "svg.fonttype": "none",  # <text> elements instead of glyph outlines: small files, selectable, searchable
    "svg.hashsalt": "judges.plots",  # clip-path and marker ids from a fixed salt: identical input, identical bytes
    "text.parse_math": False,  # judge names are data: a "$" in one must not start mathtext
    "font.family": "sans-serif",
    # DejaVu is what matplotlib measures with; the browser falls back to narrower faces, so text never overflows.
    "font.sans-serif": ["DejaVu Sans", "Helvetica", "Arial"],
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "normal",
    "axes.titlelocation": "left",
    "axes.labelsize": 9,
    "axes.labelcolor": INK,
    "axes.edgecolor": "#c8c8c8",
    "axes.linewidth": 0.8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#e8e8e8",
    "grid.linewidth": 0.8,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "xtick.labelcolor": INK,
    "ytick.labelcolor": INK,
    "xtick.labelsize": 8.5,
    "ytick.labelsize": 8.5,
    "text.color": INK,
    "legend.frameon": False,
    "legend.fontsize": 8.5,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
}

# Matplotlib writes a creator string with a URL, a date and Dublin Core type URIs unless told not to; without them it
# writes no <metadata> block at all.
_NO_METADATA: dict[str, None] = {"Creator": None, "Date": None, "Format": None, "Type": None}

# rc_context edits the process-wide rcParams, and font objects are cached and shared: two threads of a web worker
# rendering at once could see each other's settings. Renders take milliseconds, so serialising them costs nothing.
_RENDER_LOCK = threading.Lock()

_WIDTH_IN = 7.2
_LABEL_CHARS = 32  # longer judge/perturbation names are shortened on the axis (the full name is in <title>)


# --- reading the audit JSON --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Est:
    value: float | None
    low: float | None
    high: float | None
    p_value: float | None = None

    @property
    def has_interval(self) -> bool:
        return self.value is not None and self.low is not None and self.high is not None


def _num(x: Any) -> float | None:
    """A finite float, or None for null, NaN, inf, bools and anything that is not a number."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x) if math.isfinite(x) else None


def _count(x: Any) -> int:
    v = _num(x)
    return int(v) if v is not None and v > 0 else 0


def _est(obj: Any) -> _Est:
    if not isinstance(obj, Mapping):
        return _Est(None, None, None)
    return _Est(_num(obj.get("value")), _num(obj.get("ci_low")), _num(obj.get("ci_high")), _num(obj.get("p_value")))


def _get(obj: Any, *keys: str) -> Any:
    """``obj[k1][k2]...``, or None where a level is missing or not a mapping."""
    for key in keys:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _judges(audit: Any) -> list[tuple[str, Mapping[str, Any]]]:
    judges = _get(audit, "judges")
    if not isinstance(judges, Mapping):
        return []
    return [(str(name), report if isinstance(report, Mapping) else {}) for name, report in judges.items()]


# --- text -----------------------------------------------------------------------------------------------------------


def _minus(s: str) -> str:
    return s.replace("-", "\N{MINUS SIGN}")


def _fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else _minus(f"{x:.{digits}f}")


def _fmt_est(e: _Est, digits: int = 2) -> str:
    if e.value is None:
        return "n/a"
    if e.low is None or e.high is None:
        return _fmt(e.value, digits)
    return f"{_fmt(e.value, digits)} [{_fmt(e.low, digits)}, {_fmt(e.high, digits)}]"


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "p n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _short(name: str, limit: int = _LABEL_CHARS) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "\N{HORIZONTAL ELLIPSIS}"


def _about(judge: str | None) -> str:
    return f" for judge {judge}" if judge else ""


# --- drawing helpers ------------------------------------------------------------------------------------------------


def _draw_ests(ax: Axes, ests: Sequence[_Est], *, horizontal: bool, color: str = ACCENT, marker: str = "o",
               size: float = 6.0) -> list[int]:
    """Points with their intervals, the i-th at position i on the categorical axis; returns the indices left out.

    One artist each for intervals, caps and points, not one ``errorbar`` per point: that call costs ~6 ms apiece,
    which made a 20-judge plot three times slower.
    """
    shown = [(i, e) for i, e in enumerate(ests) if e.value is not None]
    spans = [(i, e.low, e.high) for i, e in shown if e.has_interval]
    if spans:
        pos, lows, highs = (list(col) for col in zip(*spans, strict=True))
        draw_spans = ax.hlines if horizontal else ax.vlines
        draw_spans(pos, lows, highs, color=color, linewidth=1.4, zorder=2)
        caps = ([*lows, *highs], pos * 2) if horizontal else (pos * 2, [*lows, *highs])
        ax.plot(*caps, linestyle="none", marker="|" if horizontal else "_", markersize=6, markeredgewidth=1.2,
                color=color, zorder=2)
    if shown:
        pos, values = [i for i, _ in shown], [e.value for _, e in shown]
        ax.plot(*((values, pos) if horizontal else (pos, values)), linestyle="none", marker=marker, markersize=size,
                color=color, markeredgecolor="white", markeredgewidth=0.8, zorder=3)
    return [i for i, e in enumerate(ests) if e.value is None]


def _na(ax: Axes, x: float, y: float) -> None:
    ax.text(x, y, "n/a", ha="center", va="center", fontsize=8, color=MUTED, zorder=3)


def _rows_height(n: int, *, per_row: float = 0.3, base: float = 1.35) -> float:
    """Figure height (inches) for ``n`` categorical rows: grows with the count, with room for titles and axes."""
    return base + per_row * max(n, 1)


def _setup_rows(ax: Axes, names: Sequence[str]) -> None:
    ax.set_yticks(range(len(names)), [_short(n) for n in names])
    ax.set_ylim(len(names) - 0.5, -0.5)  # first name on top, as in the table beside it
    ax.grid(axis="y", visible=False)
    ax.tick_params(axis="y", length=0)


def _unit_axis(ax: Axes, *, reference: float | None = None, reference_label: str = "") -> None:
    """An x axis for rates in [0, 1], with the reference value's tick labelled in words."""
    ticks = [0.0, 0.25, 0.5, 0.75, 1.0]
    labels = [f"{t:g}" + (f"\n{reference_label}" if reference is not None and t == reference else "") for t in ticks]
    ax.set_xticks(ticks, labels)
    ax.set_xlim(-0.03, 1.03)


# --- rendering ------------------------------------------------------------------------------------------------------


@contextmanager
def _house_style() -> Iterator[None]:
    """Held around building *and* saving a figure: artists read rcParams when they are created, not when drawn."""
    with _RENDER_LOCK, mpl.rc_context(_RC):
        yield


_TAG = re.compile(r"<[^>]+>")  # text content has "<" and ">" escaped, so this sees tags only
_ID_OR_REF = re.compile(r'(\bid="|href="#|url\(#)')
_DEFAULT_STYLE = re.compile(r"\s*<defs>\s*<style[^>]*>[^<]*</style>\s*</defs>")


def _to_svg(fig: Figure, *, label: str) -> str:
    """Render ``fig`` to an SVG element ready to inline in HTML."""
    buf = io.StringIO()
    # This figure's own SVG canvas: the process-wide backend is left alone. print_svg rather than savefig: savefig
    # first draws the whole figure once more for bbox_inches="tight" (unused here), ~25% of the time for the same
    # bytes; Figure.draw runs the constrained layout itself.
    FigureCanvasSVG(fig).print_svg(buf, metadata=_NO_METADATA)
    return _inline(buf.getvalue(), label=label)


def _inline(svg: str, *, label: str) -> str:
    """Make a standalone SVG document embeddable: prolog off, global CSS off, ids unique, an accessible name on."""
    svg = svg[svg.index("<svg"):]
    # Matplotlib's <style>*{stroke-linejoin…}</style> would apply to the whole HTML page once inlined; the same two
    # properties as presentation attributes on the root are inherited by this SVG alone.
    svg = _DEFAULT_STYLE.sub("", svg, count=1)
    # Ids ("figure_1", clip paths, markers) repeat between plots on one page; a prefix from the content keeps them
    # apart and still deterministic.
    prefix = "jp" + hashlib.sha256(svg.encode()).hexdigest()[:8] + "-"
    svg = _TAG.sub(lambda m: _ID_OR_REF.sub(lambda r: r.group(1) + prefix, m.group(0)), svg)
    attrs = (f'class="judge-plot" role="img" aria-label="{html.escape(label)}" '
             'stroke-linejoin="round" stroke-linecap="butt" ')
    svg = svg.replace("<svg ", "<svg " + attrs, 1)
    end_of_root = svg.index(">") + 1
    return svg[:end_of_root] + f"\n <title>{html.escape(label, quote=False)}</title>" + svg[end_of_root:]


# --- position bias --------------------------------------------------------------------------------------------------


def position_plot(audit: Mapping[str, Any]) -> str:
    """First-position rate (0.5 = no bias) and order consistency per judge, judges on the y axis.

    ``audit`` is the whole audit output; each judge's ``position.first_position_rate`` and ``position.consistency``
    are drawn as points with their intervals. Returns "" when no judge has either value.
    """
    rows = [(name, _est(_get(r, "position", "first_position_rate")), _est(_get(r, "position", "consistency")))
            for name, r in _judges(audit)]
    if not any(first.value is not None or cons.value is not None for _, first, cons in rows):
        return ""
    names = [name for name, _, _ in rows]
    label = ("Position bias per judge: share of decisive verdicts that chose the response shown first "
             "(0.5 = no bias), and share of pairs with the same verdict in both orders. "
             + "; ".join(f"{n}: first {_fmt_est(f)}, consistency {_fmt_est(c)}" for n, f, c in rows) + ".")
    with _house_style():
        fig = Figure(figsize=(_WIDTH_IN, _rows_height(len(rows))), layout="constrained")
        first_ax, cons_ax = fig.subplots(1, 2, sharey=True)
        for ax in (first_ax, cons_ax):
            _setup_rows(ax, names)
        first_ax.axvline(0.5, color=REFERENCE, linestyle="--", linewidth=1, zorder=1)
        _unit_axis(first_ax, reference=0.5, reference_label="no bias")
        _unit_axis(cons_ax)
        for i in _draw_ests(first_ax, [first for _, first, _ in rows], horizontal=True):
            _na(first_ax, 0.5, i)
        for i in _draw_ests(cons_ax, [cons for _, _, cons in rows], horizontal=True, marker="s", size=5.5):
            _na(cons_ax, 0.5, i)
        first_ax.set_title("Chooses the one shown first")
        first_ax.set_xlabel("first-position rate")
        cons_ax.set_title("Same verdict in both orders")
        cons_ax.set_xlabel("consistency")
        return _to_svg(fig, label=label)


# --- length bias ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Bin:
    mid: float
    n: int
    judge: float | None
    human: float | None


def _curve_bins(judge_report: Mapping[str, Any]) -> list[_Bin]:
    curve = _get(judge_report, "length", "curve")
    if not isinstance(curve, Sequence) or isinstance(curve, str):
        return []
    bins = []
    for b in curve:
        low, high = _num(_get(b, "bin_low")), _num(_get(b, "bin_high"))
        if low is None or high is None:
            continue
        bins.append(_Bin((low + high) / 2, _count(_get(b, "n")),
                         _num(_get(b, "judge_rate")), _num(_get(b, "human_rate"))))
    return bins


def length_curve_plot(judge_report: Mapping[str, Any], *, judge: str | None = None) -> str:
    """P(choose the longer response) against relative length difference, judge vs human, from ``length.curve``.

    Points sit at bin midpoints, sized by the bin's judgment count, which is also written along the top axis.
    ``judge`` only names the judge in the accessible title. Returns "" when no bin has a judge or human rate.
    """
    bins = _curve_bins(judge_report)
    if not any(b.judge is not None or b.human is not None for b in bins):
        return ""
    label = (f"Length bias{_about(judge)}: probability of choosing the longer response by relative length "
             "difference |len_a - len_b| / max(len_a, len_b), judge and human (0.5 = no preference). "
             + "; ".join(f"{b.mid:.2f}: judge {_fmt(b.judge)}, human {_fmt(b.human)}, n {b.n}" for b in bins) + ".")
    biggest = max((b.n for b in bins), default=0) or 1
    with _house_style():
        fig = Figure(figsize=(6.4, 3.7), layout="constrained")
        ax = fig.subplots()
        ax.axhline(0.5, color=REFERENCE, linestyle="--", linewidth=1, zorder=1)
        for attr, color, face, name in (("judge", ACCENT, ACCENT, "judge"), ("human", HUMAN, "white", "human votes")):
            pts = [(b.mid, getattr(b, attr), b.n) for b in bins if getattr(b, attr) is not None]
            if not pts:
                continue
            xs, ys, ns = zip(*pts, strict=True)
            z = 3 if attr == "judge" else 2  # the judge's line on top where the two cross
            ax.plot(xs, ys, color=color, linewidth=1.6 if attr == "judge" else 1.2, zorder=z)
            # Area, not radius, proportional to n, so a bin with 4x the judgments looks 4x as heavy.
            sizes = [12 + 110 * n / biggest for n in ns]
            ax.scatter(xs, ys, s=sizes, color=face, edgecolors=color, linewidths=1.3, zorder=z + 0.5, label=name)
        ax.set_ylim(-0.03, 1.03)
        ax.set_yticks([0, 0.25, 0.5, 0.75, 1], ["0", "0.25", "0.5", "0.75", "1"])
        ax.text(1.0, 0.5, "no preference", transform=ax.get_yaxis_transform(), ha="right", va="bottom",
                fontsize=8, color=MUTED)
        ax.set_xlim(min(0.0, *(b.mid for b in bins)), max(1.0, *(b.mid for b in bins)))
        ax.set_xlabel("relative length difference  |len_a \N{MINUS SIGN} len_b| / max(len_a, len_b)")
        ax.set_ylabel("P(chooses the longer)")
        top = ax.secondary_xaxis("top")
        top.set_xticks([b.mid for b in bins], [str(b.n) for b in bins], fontsize=7.5, color=MUTED)
        top.tick_params(length=0)
        top.set_xlabel("judgments per bin", fontsize=8, color=MUTED)
        top.spines["top"].set_visible(False)
        ax.legend(loc="best", markerscale=0.8, handletextpad=0.3)  # "best" is computed from the data: deterministic
        return _to_svg(fig, label=label)


# --- agreement with humans ------------------------------------------------------------------------------------------


_VERDICT_NAMES = {"a": "A", "b": "B", "tie": "tie"}


def _matrix(judge_report: Mapping[str, Any]) -> tuple[list[str], list[str], np.ndarray] | None:
    """The count matrix with its row (judge) and column (human) labels, or None when it is missing, ragged or
    all zero. Rows may outnumber columns: the judge has an "inconsistent" verdict that humans do not."""
    matrix = _get(judge_report, "agreement", "matrix")
    counts = _get(matrix, "counts")
    if not isinstance(counts, Sequence) or not counts or not isinstance(counts[0], Sequence):
        return None
    n_rows, n_cols = len(counts), len(counts[0])
    if n_cols == 0 or not all(isinstance(row, Sequence) and len(row) == n_cols for row in counts):
        return None
    labels = _get(matrix, "labels")
    if not isinstance(labels, Sequence) or len(labels) != n_cols:
        labels = ["a", "b", "tie"] if n_cols == 3 else [str(i) for i in range(n_cols)]
    row_labels = _get(matrix, "row_labels")
    if not isinstance(row_labels, Sequence) or len(row_labels) != n_rows:
        row_labels = list(labels) if n_rows == n_cols else [str(i) for i in range(n_rows)]
    grid = np.array([[_count(c) for c in row] for row in counts], dtype=float)
    if grid.sum() == 0:
        return None
    def name(label: object) -> str:
        return _VERDICT_NAMES.get(str(label), str(label))

    return [name(lab) for lab in row_labels], [name(lab) for lab in labels], grid


def agreement_matrix_plot(judge_report: Mapping[str, Any], *, judge: str | None = None) -> str:
    """Heatmap of ``agreement.matrix.counts``: rows the judge's combined verdict, columns the human vote.

    Counts and shares of the total are written in the cells, so no colour bar is needed; the colormap (cividis) is
    readable with colour-vision deficiencies and in greyscale. Returns "" when the matrix is missing or empty.
    """
    parsed = _matrix(judge_report)
    if parsed is None:
        return ""
    row_labels, labels, grid = parsed
    total = grid.sum()
    accuracy, kappa = _est(_get(judge_report, "agreement", "accuracy")), _est(_get(judge_report, "agreement", "kappa"))
    summary = f"accuracy {_fmt_est(accuracy)} \N{MIDDLE DOT} Cohen's \N{GREEK SMALL LETTER KAPPA} {_fmt_est(kappa)}"
    label = (f"Judge verdicts against human votes{_about(judge)} ({int(total)} battles; {summary}). "
             + "; ".join(f"judge {row_labels[i]}: " + ", ".join(f"human {labels[j]} {int(grid[i, j])}"
                                                                 for j in range(len(labels)))
                         for i in range(len(row_labels))) + ".")
    cmap = mpl.colormaps["cividis"]
    with _house_style():
        fig = Figure(figsize=(5.4, 3.2 + 0.9 * (len(row_labels) - 2)), layout="constrained")
        ax = fig.subplots()
        ax.pcolormesh(grid, cmap=cmap, vmin=0, vmax=grid.max(), edgecolors="white", linewidth=2)
        for (i, j), c in np.ndenumerate(grid):
            shade = c / grid.max()
            ink = "white" if shade < 0.55 else INK  # cividis is dark at the low end, pale yellow at the top
            ax.text(j + 0.5, i + 0.45, f"{int(c)}", ha="center", va="center", fontsize=11, fontweight="bold",
                    color=ink)
            ax.text(j + 0.5, i + 0.7, f"{100 * c / total:.0f}%", ha="center", va="center", fontsize=7.5, color=ink)
        ax.set_xticks([j + 0.5 for j in range(len(labels))], labels)
        ax.set_yticks([i + 0.5 for i in range(len(row_labels))], row_labels)
        ax.set_xlim(0, len(labels))
        ax.set_ylim(len(row_labels), 0)  # first verdict on top-left, as a confusion matrix is read
        ax.set_aspect("equal")
        ax.grid(False)
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_xlabel("human vote")
        ax.set_ylabel("judge verdict")
        known = accuracy.value is not None or kappa.value is not None
        ax.set_title("Agreement with humans" + (f"\n{summary}" if known else ""), fontsize=9.5, linespacing=1.5)
        return _to_svg(fig, label=label)


# --- robustness to prompt perturbations -----------------------------------------------------------------------------


def perturbation_plot(judge_report: Mapping[str, Any], *, judge: str | None = None) -> str:
    """Per perturbation: robustness against the replicate-consistency noise floor, with the difference's p-value.

    Two horizontal bars per perturbation name (judge colour: perturbed verdict equals the plain one; grey: a plain
    replicate equals replicate 0), intervals as error bars, and "difference, p" on the right axis. Returns "" when no
    perturbation has either rate.
    """
    perts = _get(judge_report, "perturbations")
    rows = [(str(name), _est(_get(p, "robustness")), _est(_get(p, "replicate_consistency")),
             _est(_get(p, "difference")))
            for name, p in (perts.items() if isinstance(perts, Mapping) else [])]
    if not any(rob.value is not None or rep.value is not None for _, rob, rep, _ in rows):
        return ""
    names = [name for name, _, _, _ in rows]
    label = (f"Robustness to prompt perturbations{_about(judge)}: share of verdicts unchanged by the perturbation, "
             "against the share unchanged between plain replicates (the noise floor). "
             + "; ".join(f"{n}: robustness {_fmt_est(rob)}, replicates {_fmt_est(rep)}, difference "
                         f"{_fmt(diff.value)} ({_fmt_p(diff.p_value)})" for n, rob, rep, diff in rows) + ".")
    half = 0.19  # half the gap between a perturbation's two bars
    with _house_style():
        fig = Figure(figsize=(_WIDTH_IN, _rows_height(len(rows), per_row=0.5, base=1.5)), layout="constrained")
        ax = fig.subplots()
        _setup_rows(ax, names)
        _unit_axis(ax)
        _bars(ax, [rob for _, rob, _, _ in rows], offset=-half, height=1.8 * half, color=ACCENT, missing="n/a")
        # The schema leaves replicate consistency null when the run had no replicates.
        _bars(ax, [rep for _, _, rep, _ in rows], offset=half, height=1.8 * half, color=HUMAN,
              missing="no replicates")
        right = ax.secondary_yaxis("right")
        right.set_yticks(range(len(rows)), [_difference_label(diff) for _, _, _, diff in rows])
        right.tick_params(length=0, labelsize=8, labelcolor=MUTED)
        right.spines["right"].set_visible(False)
        ax.set_xlabel("share of verdicts unchanged")
        fig.legend(handles=[Patch(color=ACCENT, label="perturbed vs plain (robustness)"),
                            Patch(color=HUMAN, label="replicate vs replicate (noise floor)")],
                   loc="outside upper left", ncols=2)
        return _to_svg(fig, label=label)


def _bars(ax: Axes, ests: Sequence[_Est], *, offset: float, height: float, color: str, missing: str) -> None:
    """Horizontal bars for rates, the i-th at i + offset, intervals in ink; ``missing`` written where a rate is null."""
    shown = [(i + offset, e) for i, e in enumerate(ests) if e.value is not None]
    if shown:
        ax.barh([y for y, _ in shown], [e.value for _, e in shown], height=height, color=color, zorder=2)
    spans = [(y, e.low, e.high) for y, e in shown if e.has_interval]
    if spans:
        ys, lows, highs = (list(col) for col in zip(*spans, strict=True))
        ax.hlines(ys, lows, highs, color=INK, linewidth=1, zorder=3)
        ax.plot([*lows, *highs], ys * 2, linestyle="none", marker="|", markersize=5, markeredgewidth=1, color=INK,
                zorder=3)
    for i, e in enumerate(ests):
        if e.value is None:
            ax.text(0.01, i + offset, missing, ha="left", va="center", fontsize=7.5, color=MUTED)


def _difference_label(diff: _Est) -> str:
    if diff.value is None:
        return "\N{GREEK CAPITAL LETTER DELTA} n/a"
    return f"\N{GREEK CAPITAL LETTER DELTA} {_minus(f'{diff.value:+.2f}')}  ({_fmt_p(diff.p_value)})"


# --- history across runs --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Metric:
    key: str
    title: str
    reference: float | None  # the "no bias" value, drawn dashed
    bounds: tuple[float, float] | None  # the metric's range, so autoscaling never shows impossible values


_HISTORY_METRICS = (
    _Metric("first_position_rate", "First-position rate (0.5 = no bias)", 0.5, (0.0, 1.0)),
    _Metric("length_coef", "Length coefficient (0 = no bias)", 0.0, None),
    _Metric("self_preference", "Self-preference (0 = no bias)", 0.0, (-1.0, 1.0)),
    _Metric("accuracy", "Accuracy against humans", None, (0.0, 1.0)),
)


def bias_history_plot(points: Sequence[Mapping[str, Any]]) -> str:
    """How each bias moved across runs and template versions: one small panel per metric, runs along x.

    ``points`` are in time order, each ``{"label": str, "first_position_rate": Est|None, "length_coef": Est|None,
    "self_preference": Est|None, "accuracy": Est|None}``. Metrics with no value in any point get no panel. Returns ""
    when there are no points or no values.
    """
    labels = [str(_get(p, "label") or f"#{i + 1}") for i, p in enumerate(points)]
    series = {m.key: [_est(_get(p, m.key)) for p in points] for m in _HISTORY_METRICS}
    metrics = [m for m in _HISTORY_METRICS if any(e.value is not None for e in series[m.key])]
    if not metrics:
        return ""
    label = ("Judge bias history across runs: " + "; ".join(
        f"{m.title}: " + ", ".join(f"{lab} {_fmt_est(e)}" for lab, e in zip(labels, series[m.key], strict=True))
        for m in metrics) + ".")
    xs = range(len(labels))
    width = min(12.0, max(6.0, 2.2 + 0.55 * len(labels)))
    # Tilt labels only when they would not fit side by side (about 0.075 in per character at 8.5 pt).
    tilt = sum(len(_short(lab, 24)) for lab in labels) * 0.075 > width - 1.8
    with _house_style():
        fig = Figure(figsize=(width, 0.6 + 1.45 * len(metrics) + (0.5 if tilt else 0)), layout="constrained")
        axes = fig.subplots(len(metrics), 1, sharex=True, squeeze=False)[:, 0]
        for ax, metric in zip(axes, metrics, strict=True):
            _history_panel(ax, metric, series[metric.key])
        axes[-1].set_xticks(list(xs), [_short(lab, 24) for lab in labels],
                            rotation=30 if tilt else 0, ha="right" if tilt else "center",
                            rotation_mode="anchor")
        axes[-1].set_xlim(-0.5, len(labels) - 0.5)
        return _to_svg(fig, label=label)


def _history_panel(ax: Axes, metric: _Metric, ests: Sequence[_Est]) -> None:
    present = [(i, e.value) for i, e in enumerate(ests) if e.value is not None]
    if metric.reference is not None:
        ax.axhline(metric.reference, color=REFERENCE, linestyle="--", linewidth=1, zorder=1)
    xs, ys = zip(*present, strict=True)
    ax.plot(xs, ys, color=ACCENT, linewidth=1, alpha=0.45, zorder=1)  # a faint trail: which way it moved
    missing = _draw_ests(ax, ests, horizontal=False, size=5.5)
    low, high = ax.get_ylim()
    if metric.bounds is not None:
        low, high = max(low, metric.bounds[0]), min(high, metric.bounds[1])
        ax.set_ylim(low, high)
    for i in missing:  # low in the panel, clear of the trail that passes over the gap
        ax.text(i, low + 0.04 * (high - low), "n/a", ha="center", va="bottom", fontsize=8, color=MUTED)
    ax.set_title(metric.title, fontsize=9)
    ax.grid(axis="x", visible=False)
    ax.tick_params(axis="x", length=0)
