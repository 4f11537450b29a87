"""One judge's rows as local arrays, the per-battle facts, and the ``Est`` dict helpers.

Every audit module takes a :class:`JudgeView`: the judge's rows with battles renumbered 0..B-1
(the bootstrap cluster index), battle-level values (human vote, lengths, models, category) and the
bootstrap weight matrix shared by all of the judge's bootstrap intervals (so that they are jointly
resampled: a difference of two figures is resampled on the same battles).
"""
from __future__ import annotations

import enum
import math
import zlib
from dataclasses import dataclass
from typing import Final

import numpy as np

from .data import JudgmentTable
from .stats import (
    binom_test,
    bootstrap_p_value,
    bootstrap_weights,
    normal_quantile,
    normal_two_sided_p,
    percentile_ci,
    wilson_interval,
)

__all__ = ["JudgeView", "est", "est_bootstrap", "est_null", "est_wald", "est_wilson", "judge_rng", "judge_view"]


class _Missing(enum.Enum):
    """The type of ``_MISSING``: "no p_value argument", which is not None ("a test, not estimable")."""

    MISSING = enum.auto()


_MISSING: Final = _Missing.MISSING


def _num(x: float | None) -> float | None:
    """A JSON-safe float: None for None, NaN and infinities."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def est(value: float | None, ci: tuple[float, float] | None, n: int,
        p_value: float | _Missing | None = _MISSING) -> dict:
    """The schema's ``Est``: value, ci_low, ci_high (+ p_value where a test is stated), n."""
    value = _num(value)
    low, high = (None, None) if ci is None or value is None else (_num(ci[0]), _num(ci[1]))
    out = {"value": value, "ci_low": low, "ci_high": high}
    if p_value is not _MISSING:
        out["p_value"] = _num(p_value) if value is not None else None
    out["n"] = int(n)
    return out


def est_null(n: int = 0, *, test: bool = False) -> dict:
    """An ``Est`` with nothing estimable."""
    return est(None, None, n, None) if test else est(None, None, n)


def est_wilson(k: int, n: int, level: float, *, test_against: float | None = None) -> dict:
    """Proportion ``k / n`` with a Wilson interval (and an exact binomial test when asked)."""
    if n <= 0:
        return est_null(0, test=test_against is not None)
    ci = wilson_interval(int(k), int(n), level)
    if test_against is None:
        return est(k / n, ci, n)
    return est(k / n, ci, n, binom_test(int(k), int(n), test_against))


def est_bootstrap(value: float | None, samples: np.ndarray | None, n: int, level: float, *, test: bool = False) -> dict:
    """Point value with a percentile bootstrap interval (and a bootstrap-SE normal test of value == 0)."""
    if value is None or not math.isfinite(value):
        return est_null(n, test=test)
    ci = percentile_ci(samples, level)
    if not test:
        return est(value, ci, n)
    return est(value, ci, n, bootstrap_p_value(value, samples))


def est_wald(coef: float, se: float, n: int, level: float) -> dict:
    """Coefficient with a Wald interval and two-sided Wald p-value (from a cluster-robust SE)."""
    if not (math.isfinite(coef) and math.isfinite(se)) or se <= 0.0:
        return est_null(n, test=True)
    z = normal_quantile(0.5 + level / 2.0)
    return est(coef, (coef - z * se, coef + z * se), n, normal_two_sided_p(coef / se))


def judge_rng(seed: int, judge: str) -> np.random.Generator:
    """The judge's own random stream: a function of the seed and the judge's name only, so that the
    figures of one judge do not change when other judges are added to or filtered out of a file."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(judge.encode("utf-8"))])


@dataclass(frozen=True, eq=False)
class JudgeView:
    """One judge's rows (``r_*``), its battles (``b_*``) and pair units (``u_*``).

    Rows
        ``r_battle`` (local battle index), ``r_cluster`` (local resampling cluster: the battle unless the
        input groups battles with ``cluster``), ``r_verdict``, ``r_order_ab``, ``r_len_a/b``, ``r_md_a/b``
        (-1 unknown), ``r_replicate``, ``r_perturbation`` (-1 plain), ``r_perturbed``, ``r_model_a/b``,
        ``r_human`` (the battle's human vote on every row), ``plain`` (mask).
    Battles
        ``b_human``, ``b_len_a/b``, ``b_md_a/b``, ``b_model_a/b``, ``b_family_a/b``, ``b_category``: from
        the battle's first plain row (its first row if it has none; the human vote from any row).
    Units
        A unit is one (battle, replicate) of plain judgments: ``u_ab`` / ``u_ba`` the verdict given with
        A / B shown first (-1 if that order is missing), ``u_battle``.
    """

    name: str
    family: str | None
    family_code: int
    table: JudgmentTable
    n_rows: int
    n_battles: int
    level: float
    weights: np.ndarray | None   # (R, n_battles): every battle of a drawn cluster gets the cluster's count
    r_battle: np.ndarray
    r_cluster: np.ndarray
    r_verdict: np.ndarray
    r_order_ab: np.ndarray
    r_len_a: np.ndarray
    r_len_b: np.ndarray
    r_md_a: np.ndarray
    r_md_b: np.ndarray
    r_replicate: np.ndarray
    r_perturbation: np.ndarray
    r_perturbed: np.ndarray
    r_model_a: np.ndarray
    r_model_b: np.ndarray
    r_human: np.ndarray
    plain: np.ndarray
    b_human: np.ndarray
    b_len_a: np.ndarray
    b_len_b: np.ndarray
    b_md_a: np.ndarray
    b_md_b: np.ndarray
    b_model_a: np.ndarray
    b_model_b: np.ndarray
    b_family_a: np.ndarray
    b_family_b: np.ndarray
    b_category: np.ndarray
    u_ab: np.ndarray
    u_ba: np.ndarray
    u_battle: np.ndarray

    def battle_sum(self, values: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Per-battle sums of row values (``rows`` a mask or None for all rows) -> (n_battles,)."""
        battles = self.r_battle if rows is None else self.r_battle[rows]
        return np.bincount(battles, weights=np.asarray(values, dtype=np.float64), minlength=self.n_battles)


def _first_row_per_group(group: np.ndarray, n_groups: int, rows: np.ndarray) -> np.ndarray:
    """Index of the first row (among ``rows``, in order) of each group; -1 for groups without one."""
    first = np.full(n_groups, -1, dtype=np.int64)
    first[group[rows][::-1]] = rows[::-1]  # reversed: the earliest row is written last and wins
    return first


def judge_view(table: JudgmentTable, judge: int, *, seed: int, bootstrap: int, level: float) -> JudgeView:
    """Build the :class:`JudgeView` of judge code ``judge`` (its bootstrap weights drawn from :func:`judge_rng`)."""
    rows = np.flatnonzero(table.judge == judge)
    name = table.judges[judge]
    battles, r_battle = np.unique(table.battle[rows], return_inverse=True)
    r_battle = r_battle.astype(np.int64)
    nb = battles.size
    plain = table.perturbation[rows] < 0
    local = np.arange(rows.size)
    first_plain = _first_row_per_group(r_battle, nb, local[plain])
    first_any = _first_row_per_group(r_battle, nb, local)
    src = rows[np.where(first_plain >= 0, first_plain, first_any)]
    human_rows = local[table.human[rows] >= 0]
    first_human = _first_row_per_group(r_battle, nb, human_rows)
    b_human = np.where(first_human >= 0, table.human[rows][np.maximum(first_human, 0)], -1).astype(np.int8)
    fam_codes = table.judge_family[rows]
    family_code = int(fam_codes[fam_codes >= 0][0]) if (fam_codes >= 0).any() else -1
    # Units: (battle, replicate) of plain rows.
    p_rows = local[plain]
    rep = table.replicate[rows][p_rows].astype(np.int64)
    key = r_battle[p_rows] * (int(rep.max()) + 1 if rep.size else 1) + rep
    _, unit = np.unique(key, return_inverse=True)
    n_units = int(unit.max()) + 1 if unit.size else 0
    u_ab = np.full(n_units, -1, dtype=np.int8)
    u_ba = np.full(n_units, -1, dtype=np.int8)
    order = table.order_ab[rows][p_rows]
    verdict = table.verdict[rows][p_rows]
    u_ab[unit[order]] = verdict[order]
    u_ba[unit[~order]] = verdict[~order]
    u_battle = np.zeros(n_units, dtype=np.int64)
    u_battle[unit] = r_battle[p_rows]
    rng = judge_rng(seed, name)
    # Resampling clusters: a battle's cluster label (from its first row) or, without one, the battle itself.
    # Pairs cut from one K-wise battle share a cluster: resampled apart, their correlation would be ignored.
    b_cluster_code = table.cluster[rows][first_any].astype(np.int64)
    key_cluster = np.where(b_cluster_code >= 0, b_cluster_code, len(table.clusters) + np.arange(nb))
    _, b_cluster = np.unique(key_cluster, return_inverse=True)
    n_clusters = int(b_cluster.max()) + 1 if b_cluster.size else 0
    cluster_weights = bootstrap_weights(n_clusters, bootstrap, rng)
    return JudgeView(
        name=name, family=table.families[family_code] if family_code >= 0 else None, family_code=family_code,
        table=table, n_rows=int(rows.size), n_battles=int(nb), level=level,
        weights=None if cluster_weights is None else cluster_weights[:, b_cluster],
        r_battle=r_battle, r_cluster=b_cluster[r_battle].astype(np.int64),
        r_verdict=table.verdict[rows], r_order_ab=table.order_ab[rows],
        r_len_a=table.len_a[rows], r_len_b=table.len_b[rows], r_md_a=table.md_a[rows], r_md_b=table.md_b[rows],
        r_replicate=table.replicate[rows], r_perturbation=table.perturbation[rows],
        r_perturbed=table.perturbed[rows], r_model_a=table.model_a[rows], r_model_b=table.model_b[rows],
        r_human=b_human[r_battle], plain=plain,
        b_human=b_human, b_len_a=table.len_a[src], b_len_b=table.len_b[src], b_md_a=table.md_a[src],
        b_md_b=table.md_b[src], b_model_a=table.model_a[src], b_model_b=table.model_b[src],
        b_family_a=table.family_a[src], b_family_b=table.family_b[src], b_category=table.category[src],
        u_ab=u_ab, u_ba=u_ba, u_battle=u_battle,
    )
