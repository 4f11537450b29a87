"""Bradley-Terry with ties (half / Davidson / Rao-Kupper) and optional style covariates.

Model. With strengths ``theta`` and linear predictor ``d = theta_a - theta_b + x . beta`` (``x`` the
style covariates of the battle, absent without style control), one battle has

=============  ============================  ============================  ========================
ties           P(A wins)                     P(B wins)                     P(tie)
=============  ============================  ============================  ========================
``half``       sigmoid(d)                    sigmoid(-d)                   tie = 1/2 win + 1/2 loss
``davidson``   e^(d/2) / D                   e^(-d/2) / D                  nu / D,
                                                                           D = e^(d/2)+e^(-d/2)+nu
``rao-kupper`` sigmoid(d - eta)              sigmoid(-d - eta)             (e^(2 eta) - 1) P(A) P(B)
=============  ============================  ============================  ========================

``half`` is Chatbot Arena's convention: a tie contributes ``(log P(A) + log P(B)) / 2``; it is not a
probability model for ties, and on data with ties it compresses the strengths towards 0 compared
with Davidson (see benchmarks/RESULTS.md). Davidson's ``nu = exp(eta) > 0`` and Rao-Kupper's
``theta_RK = exp(eta) >= 1`` are fitted jointly with ``theta``; ``eta`` is the parameter we optimise.
Under both, decisive outcomes alone follow plain BT, so ``exclude_ties=True`` recovers the same
``theta`` up to noise.

Identification: the likelihood only depends on differences inside each connected component of the
comparison graph, so each component is centred to mean 0 (see :mod:`.estimation`).

All derivatives are analytic; the per-battle ("unit") derivatives with respect to ``d`` and ``eta``
are assembled into gradient / Hessian / score-outer-product blocks by scatter-adds.
"""
from __future__ import annotations

from typing import Literal

import numpy as np

from ._numeric import log_sigmoid_pair, scatter_rows, sigmoid_pair
from .data import TIE, PairCounts

__all__ = ["PairwiseObjective", "TieMode", "expected_score", "pair_probabilities"]

TieMode = Literal["half", "davidson", "rao-kupper"]
TIE_MODES: tuple[TieMode, ...] = ("half", "davidson", "rao-kupper")
_N_COLS = 3  # weight columns: A wins, B wins, tie


# ------------------------------------------------------------------------------ unit derivatives
def _units_half(d: np.ndarray) -> dict[str, list[np.ndarray]]:
    lp, ln = log_sigmoid_pair(d)
    sp, sn = sigmoid_pair(d)
    udd = -sp * sn
    return {"u": [lp, ln, 0.5 * (lp + ln)], "ud": [sn, -sp, 0.5 * (sn - sp)], "udd": [udd, udd, udd]}


def _units_davidson(d: np.ndarray, eta: np.ndarray) -> dict[str, list[np.ndarray]]:
    half_d = 0.5 * d
    log_d = np.logaddexp(np.logaddexp(half_d, -half_d), eta)
    pa, pb, pt = np.exp(half_d - log_d), np.exp(-half_d - log_d), np.exp(eta - log_d)
    diff = pa - pb
    udd = -(0.25 * (pa + pb) - 0.25 * diff * diff)
    ude = 0.5 * diff * pt
    uee = -pt * (1.0 - pt)
    return {
        "u": [half_d - log_d, -half_d - log_d, eta - log_d],
        "ud": [0.5 - 0.5 * diff, -0.5 - 0.5 * diff, -0.5 * diff],
        "ue": [-pt, -pt, 1.0 - pt],
        "udd": [udd, udd, udd],
        "ude": [ude, ude, ude],
        "uee": [uee, uee, uee],
    }


def _units_rao_kupper(d: np.ndarray, eta: np.ndarray) -> dict[str, list[np.ndarray]]:
    la, _ = log_sigmoid_pair(d - eta)
    lb, _ = log_sigmoid_pair(-d - eta)
    pa, qa = sigmoid_pair(d - eta)
    pb, qb = sigmoid_pair(-d - eta)
    # P(tie) = (e^{2 eta} - 1) P(A) P(B); log(e^{2 eta} - 1) written with expm1 for small eta.
    with np.errstate(divide="ignore", invalid="ignore"):  # eta <= 0 is outside the domain: -> nan
        one_minus = -np.expm1(-2.0 * eta)
        c0 = 2.0 * eta + np.log(one_minus)
        c1 = 2.0 / one_minus
        c2 = -4.0 * np.exp(-2.0 * eta) / (one_minus * one_minus)
    ha, hb = pa * qa, pb * qb
    return {
        "u": [la, lb, c0 + la + lb],
        "ud": [qa, -qb, qa - qb],
        "ue": [-qa, -qb, c1 - qa - qb],
        "udd": [-ha, -hb, -ha - hb],
        "ude": [ha, -hb, ha - hb],
        "uee": [-ha, -hb, c2 - ha - hb],
    }


def pair_probabilities(d: np.ndarray, ties: TieMode = "half", eta: float | None = None) -> np.ndarray:
    """Outcome probabilities ``(P(A wins), P(B wins), P(tie))`` stacked on the last axis.

    For ``ties="half"`` the model has no tie probability; the result is ``(sigmoid(d), sigmoid(-d), 0)``.
    """
    d = np.asarray(d, dtype=np.float64)
    if ties == "half":
        sp, sn = sigmoid_pair(d)
        return np.stack([sp, sn, np.zeros_like(d)], axis=-1)
    if eta is None:
        raise TypeError(f"ties={ties!r} needs eta (the log tie parameter)")
    units = (_units_davidson if ties == "davidson" else _units_rao_kupper)(d, np.full_like(d, float(eta)))
    return np.exp(np.stack(units["u"], axis=-1))


def expected_score(d: np.ndarray, ties: TieMode = "half", eta: float | None = None) -> np.ndarray:
    """Expected score of A against B (win = 1, tie = 1/2): the model's "win probability"."""
    p = pair_probabilities(d, ties, eta)
    return p[..., 0] + 0.5 * p[..., 2]


# -------------------------------------------------------------------------------------- objective
class PairwiseObjective:
    """Batched negative log-likelihood of Bradley-Terry with ties on :class:`PairCounts`.

    Parameters are laid out as ``[theta (M), beta (F), eta (0 or 1)]``. Weights are a tuple of
    three ``(R, n)`` arrays: battles won by A, won by B, and tied, per row and round.

    Parameters
    ----------
    pairs : PairCounts
        Data; ``pairs.features`` is used iff ``style`` is True.
    ties : {"half", "davidson", "rao-kupper"}
        Tie model.
    exclude_ties : bool
        Drop outcomes 2 and 3.
    both_bad_as_tie : bool
        Count outcome 3 as a tie (True) or drop it (False).
    style : bool
        Fit style coefficients ``beta`` on ``pairs.features``.

    Notes
    -----
    Without style covariates, rows are canonicalised to ``a < b`` (swapping the outcome), which is
    exact because the model has no position effect, and merged to one row per pair: a 130-model
    arena then has at most 8,385 rows whatever the number of battles.
    """

    _pair_id: np.ndarray | None  # style rows: each row's pair (an index into _ua/_ub); None when rows are pairs

    def __init__(
        self,
        pairs: PairCounts,
        ties: TieMode = "half",
        *,
        exclude_ties: bool = False,
        both_bad_as_tie: bool = True,
        style: bool = False,
    ) -> None:
        if ties not in TIE_MODES:
            raise ValueError(f"ties must be one of {TIE_MODES}, got {ties!r}")
        if style and pairs.features is None:
            raise ValueError("style control needs PairCounts.features")
        data = pairs.select_outcomes(exclude_ties=exclude_ties, both_bad_as_tie=both_bad_as_tie)
        self.ties: TieMode = ties
        self.models = pairs.models
        self.n_models = len(pairs.models)
        w = self._build_rows(data, style)
        if style:
            flat = [name for name, sd in zip(data.feature_names, self.x.std(axis=0), strict=True) if sd == 0]
            if flat:
                raise ValueError(f"style feature(s) {flat} are constant across battles, so their coefficient "
                                 "is not identified; leave them out")
        if ties != "half" and w[:, TIE].sum() == 0:
            raise ValueError(f"ties={ties!r} needs ties in the data to fit the tie parameter; use ties='half'")
        self.feature_names: tuple[str, ...] = data.feature_names if style else ()
        self.n_features = len(self.feature_names)
        self.n_eta = 0 if ties == "half" else 1
        self.n_params = self.n_models + self.n_features + self.n_eta
        self.extra_names = tuple(f"beta[{n}]" for n in self.feature_names) + (("eta",) if self.n_eta else ())
        self._base = tuple(np.ascontiguousarray(w[:, k]) for k in range(_N_COLS))
        # Resampling cells, column by column: (rows with a positive count) for A wins, B wins, ties.
        self._cell_rows = [np.flatnonzero(col > 0) for col in self._base]
        self._cell_counts = np.concatenate([col[r] for col, r in zip(self._base, self._cell_rows, strict=True)])
        self._segments = None if style else (_Segments(self.pa, self.n_models), _Segments(self.pb, self.n_models))

    def _build_rows(self, data: PairCounts, style: bool) -> np.ndarray:
        a, b, out, w = data.a, data.b, data.outcome.astype(np.int64), data.weight
        m = self.n_models
        if style:
            self.pa, self.pb = a, b
            self.x = np.asarray(data.features)
            weights: np.ndarray = np.zeros((a.size, _N_COLS))
            weights[np.arange(a.size), out] = w
            lo, hi = np.minimum(a, b), np.maximum(a, b)
            pair_code, self._pair_id = np.unique(lo * m + hi, return_inverse=True)
            self._ua, self._ub = pair_code // m, pair_code % m
            return weights
        swap = a > b
        lo, hi = np.where(swap, b, a), np.where(swap, a, b)
        # Swapping positions turns "A wins" into "B wins"; ties stay ties.
        out = np.where(swap & (out < TIE), 1 - out, out)
        pair_code, inverse = np.unique(lo * m + hi, return_inverse=True)
        weights = np.bincount(inverse * _N_COLS + out, weights=w, minlength=pair_code.size * _N_COLS)
        self.pa, self.pb = pair_code // m, pair_code % m  # sorted by (pa, pb)
        self.x = np.zeros((pair_code.size, 0))
        self._pair_id = None
        self._ua, self._ub = self.pa, self.pb
        return weights.reshape(pair_code.size, _N_COLS)

    # -- data views
    def base_weights(self) -> tuple[np.ndarray, ...]:
        """Weights of the observed data, as a batch of one round."""
        return tuple(col[None] for col in self._base)

    def cell_counts(self) -> list[np.ndarray]:
        """Counts of the non-empty (row, outcome) cells: the units the bootstrap resamples."""
        return [self._cell_counts]

    def weights_from_cells(self, counts: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        """Inverse of :meth:`cell_counts` for a batch ``counts[0]`` of shape (R, n_cells)."""
        c = counts[0]
        n = self.pa.size
        out = []
        start = 0
        for rows in self._cell_rows:
            block = c[:, start: start + rows.size]
            start += rows.size
            if rows.size == n:  # every row has this outcome: no scatter needed
                out.append(np.ascontiguousarray(block))
            else:
                col = np.zeros((c.shape[0], n))
                col[:, rows] = block
                out.append(col)
        return tuple(out)

    def observed(self, weights: tuple[np.ndarray, ...]) -> np.ndarray:
        """Battles per model in each round, shape (R, M)."""
        tot = weights[0] + weights[1] + weights[2]
        return scatter_rows(tot, self.pa, self.n_models) + scatter_rows(tot, self.pb, self.n_models)

    def edge_cells(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Directed "beat or tied" edges ``src -> dst`` with the (stratum, cell) that carries each.

        A win cell gives winner -> loser, a tie cell both directions; Zermelo's condition on these
        edges decides whether the MLE is finite (see :func:`~._numeric.strength_status`).
        """
        sizes = [r.size for r in self._cell_rows]
        offsets = np.cumsum([0, *sizes])
        ra, rb, rt = self._cell_rows
        ca, cb, ct = (np.arange(offsets[k], offsets[k + 1]) for k in range(_N_COLS))
        src = np.concatenate([self.pa[ra], self.pb[rb], self.pa[rt], self.pb[rt]])
        dst = np.concatenate([self.pb[ra], self.pa[rb], self.pb[rt], self.pa[rt]])
        cells = np.concatenate([ca, cb, ct, ct])
        return src, dst, np.zeros(cells.size, dtype=np.int64), cells

    def mask_units(self, weights: tuple[np.ndarray, ...], keep: np.ndarray) -> tuple[np.ndarray, ...]:
        """Zero the battles of models not in ``keep`` (R, M) in each round."""
        drop = ~(keep[:, self.pa] & keep[:, self.pb])
        return tuple(np.where(drop, 0.0, w) for w in weights)

    def x0(self) -> np.ndarray:
        """Starting point: equal strengths, no style effect, tie parameter matched to the tie rate."""
        x = np.zeros(self.n_params)
        if self.n_eta:
            wa, wb, wt = (col.sum() for col in self._base)
            p_tie = float(np.clip(wt / (wa + wb + wt), 1e-3, 0.999))
            # At d = 0: Davidson P(tie) = nu / (2 + nu); Rao-Kupper P(A) = sigmoid(-eta) = (1 - p_tie) / 2.
            nu = 2 * p_tie / (1 - p_tie) if self.ties == "davidson" else (1 + p_tie) / (1 - p_tie)
            x[-1] = np.log(nu)
        return x

    def feasible(self, x: np.ndarray) -> np.ndarray:
        """Rao-Kupper needs ``eta > 0``; everything else is unconstrained."""
        if self.ties == "rao-kupper":
            return x[:, -1] > 0
        return np.ones(x.shape[0], dtype=bool)

    # -- likelihood
    def _predictor(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        m, f = self.n_models, self.n_features
        # np.take keeps the result C-ordered; x[:, idx] comes back Fortran-ordered, which makes every
        # later elementwise operation against the C-ordered weights 2-3x slower.
        d = np.take(x, self.pa, axis=1)
        d -= np.take(x, self.pb, axis=1)
        if f:
            d = d + x[:, m: m + f] @ self.x.T
        eta = x[:, -1:] if self.n_eta else None
        return d, eta

    def _units(self, x: np.ndarray) -> dict[str, list[np.ndarray]]:
        d, eta = self._predictor(x)
        if self.ties == "half":
            return _units_half(d)
        assert eta is not None  # a tie model other than "half" has the eta parameter
        return (_units_davidson if self.ties == "davidson" else _units_rao_kupper)(d, eta)

    def derivatives(self, x: np.ndarray, weights: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Negative log-likelihood, gradient and Hessian for each round."""
        if self.ties == "half":
            return self._derivatives_half(x, weights)
        if self.ties == "rao-kupper":
            return self._derivatives_rao_kupper(x, weights)
        return self._derivatives_from_units(x, weights)

    def _derivatives_from_units(
        self, x: np.ndarray, weights: tuple[np.ndarray, ...]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Any tie model, from its per-outcome unit derivatives (the reference the fast paths are tested against)."""
        units = self._units(x)

        def wsum(key: str) -> np.ndarray:
            return sum(c * u for c, u in zip(weights, units[key], strict=True))

        value = -wsum("u").sum(axis=1)
        grad, hess = self._assemble(wsum("ud"), -wsum("udd"), wsum("ue"), -wsum("ude"), -wsum("uee"))
        return value, grad, hess

    def _derivatives_half(
        self, x: np.ndarray, weights: tuple[np.ndarray, ...]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # Fast path (it is what the bootstrap spends its time in): a tie is half a win plus half a
        # loss, and every sigmoid-type quantity comes from one exp and one log1p.
        # In-place ufuncs keep the number of (R, n) temporaries small.
        d, _ = self._predictor(x)
        w_a, w_b, w_t = weights
        wt = w_a + w_b
        wt += w_t
        wa = 0.5 * w_t
        wa += w_a
        e = np.abs(d)
        np.negative(e, out=e)
        np.exp(e, out=e)  # e = exp(-|d|) <= 1: never overflows
        inv = e + 1.0
        np.reciprocal(inv, out=inv)
        log_p = np.minimum(d, 0.0)
        log_p -= np.log1p(e)  # log sigmoid(d); log sigmoid(-d) = log_p - d
        value = np.einsum("rn,rn->r", wt - wa, d) - np.einsum("rn,rn->r", wt, log_p)
        e *= inv  # e / (1 + e) = sigmoid(-|d|)
        dl = np.where(d >= 0, inv, e)  # sigmoid(d)
        dl *= wt
        np.subtract(wa, dl, out=dl)  # d loglik / dd = wa - wt * sigmoid(d)
        e *= inv
        e *= wt  # -d2 loglik / dd2 = wt * sigmoid(d) * sigmoid(-d)
        grad, hess = self._assemble(dl, e, None, None, None)
        return value, grad, hess

    def _derivatives_rao_kupper(
        self, x: np.ndarray, weights: tuple[np.ndarray, ...]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # Fast path for the default tie model (the bootstrap's inner loop). With P(A) = s(d - eta),
        # P(B) = s(-d - eta) and P(tie) = (e^{2 eta} - 1) P(A) P(B), a tie counts as one A-type and one B-type
        # term plus a constant, so the weighted unit sums of _units_rao_kupper collapse onto
        # WA = w_a + w_t and WB = w_b + w_t:  cd = WA qa - WB qb,  hdd = WA ha + WB hb,
        # ce = w_t c1 - WA qa - WB qb,  hde = WB hb - WA ha,  hee = WA ha + WB hb - w_t c2.
        d, eta = self._predictor(x)  # (R, n), (R, 1)
        assert eta is not None
        w_a, w_b, w_t = weights
        big_a, big_b = w_a + w_t, w_b + w_t
        log_pa, _ = log_sigmoid_pair(d - eta)
        log_pb, _ = log_sigmoid_pair(-d - eta)
        pa, qa = sigmoid_pair(d - eta)
        pb, qb = sigmoid_pair(-d - eta)
        eta_r = eta[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):  # eta <= 0 is outside the domain: -> nan
            one_minus = -np.expm1(-2.0 * eta_r)
            c0 = 2.0 * eta_r + np.log(one_minus)
            c1 = 2.0 / one_minus
            c2 = -4.0 * np.exp(-2.0 * eta_r) / (one_minus * one_minus)
        ties = w_t.sum(axis=1)
        value = -(np.einsum("rn,rn->r", big_a, log_pa) + np.einsum("rn,rn->r", big_b, log_pb) + ties * c0)
        pa *= qa  # ha = P(A)(1 - P(A))
        pb *= qb  # hb
        qa *= big_a  # WA qa
        qb *= big_b  # WB qb
        pa *= big_a  # WA ha
        pb *= big_b  # WB hb
        cd = qa - qb
        ce = -(qa + qb)
        hde = pb - pa
        hdd = pa + pb
        grad, hess = self._assemble(cd, hdd, ce, hde, hdd)
        # The eta terms that do not depend on the row: added to the summed entries _assemble made.
        grad[:, -1] -= ties * c1
        hess[:, -1, -1] -= ties * c2
        return value, grad, hess

    def information(self, x: np.ndarray) -> np.ndarray:
        """Sum over battles of score outer products ``J`` at ``x`` (P,), for the sandwich."""
        units = self._units(x[None])
        cols = self.base_weights()
        ud = units["ud"]
        jdd = sum(c * s * s for c, s in zip(cols, ud, strict=True))
        if not self.n_eta:
            return self._assemble(np.zeros_like(jdd), jdd, None, None, None)[1][0]
        ue = units["ue"]
        jde = sum(c * s * t for c, s, t in zip(cols, ud, ue, strict=True))
        jee = sum(c * t * t for c, t in zip(cols, ue, strict=True))
        return self._assemble(np.zeros_like(jdd), jdd, np.zeros_like(jdd), jde, jee)[1][0]

    def _diff_scatter(self, values: np.ndarray) -> np.ndarray:
        """``out[:, a] += v; out[:, b] -= v`` per row, shape (R, M)."""
        m = self.n_models
        if self._segments is None:
            return scatter_rows(values, self.pa, m) - scatter_rows(values, self.pb, m)
        return self._segments[0].sum(values) - self._segments[1].sum(values)

    def gradient_at(self, x: np.ndarray, weights: tuple[np.ndarray, ...]) -> np.ndarray:
        """Gradient (R, P) at one point ``x`` (P,) for a batch of weights.

        At a fixed point the per-row derivatives are computed once and the gradient is linear in
        the weights, so this costs a few multiply-adds per row instead of a full evaluation; the
        bootstrap uses it for a cheap first (chord) step from the full-data fit.
        """
        units = self._units(x[None])
        cd = sum(w * u for w, u in zip(weights, units["ud"], strict=True))
        ce = sum(w * u for w, u in zip(weights, units["ue"], strict=True)) if self.n_eta else None
        return self._gradient(cd, ce)

    def _gradient(self, cd: np.ndarray, ce: np.ndarray | None) -> np.ndarray:
        m, f = self.n_models, self.n_features
        grad = np.zeros((cd.shape[0], self.n_params))
        grad[:, :m] = -self._diff_scatter(cd)
        if f:
            grad[:, m: m + f] = -cd @ self.x
        if self.n_eta:
            assert ce is not None  # callers pass the eta derivatives whenever the model has eta
            grad[:, -1] = -ce.sum(axis=1)
        return grad

    def _assemble(
        self,
        cd: np.ndarray,
        hdd: np.ndarray,
        ce: np.ndarray | None,
        hde: np.ndarray | None,
        hee: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Gradient (R, P) and Hessian (R, P, P) of ``-loglik`` from per-row derivatives.

        ``cd`` = dl/dd, ``hdd`` = -d2l/dd2, ``ce`` = dl/deta, ``hde`` = -d2l/(dd deta),
        ``hee`` = -d2l/deta2, each of shape (R, n) (summed over the outcomes of the row).
        """
        r, m, f, p = cd.shape[0], self.n_models, self.n_features, self.n_params
        grad = self._gradient(cd, ce)
        hess = np.zeros((r, p, p))
        self._theta_block(hess, hdd)
        if f:
            hdx = hdd[:, :, None] * self.x[None]  # (R, n, F)
            for k in range(f):
                col = self._diff_scatter(hdx[:, :, k])
                hess[:, :m, m + k] = col
                hess[:, m + k, :m] = col
            hess[:, m: m + f, m: m + f] = np.einsum("rnf,ng->rfg", hdx, self.x)
        if self.n_eta:
            assert hde is not None and hee is not None  # callers pass the eta derivatives whenever the model has eta
            col = self._diff_scatter(hde)
            hess[:, :m, -1] = col
            hess[:, -1, :m] = col
            if f:
                cross = hde @ self.x
                hess[:, m: m + f, -1] = cross
                hess[:, -1, m: m + f] = cross
            hess[:, -1, -1] = hee.sum(axis=1)
        return grad, hess

    def _theta_block(self, hess: np.ndarray, hdd: np.ndarray) -> None:
        r, m, p = hdd.shape[0], self.n_models, self.n_params
        per_pair = hdd if self._pair_id is None else scatter_rows(hdd, self._pair_id, self._ua.size)
        flat = hess.reshape(r, p * p)
        # Canonical pairs are unique, so plain fancy assignment (no accumulation) fills the block,
        # and each diagonal entry is minus the sum of its row's off-diagonal entries.
        flat[:, self._ua * p + self._ub] = -per_pair
        flat[:, self._ub * p + self._ua] = -per_pair
        idx = np.arange(m)
        hess[:, idx, idx] = -hess[:, :m, :m].sum(axis=2)


class _Segments:
    """Fast ``scatter_rows`` for a fixed index: sort once, then ``np.add.reduceat`` per call."""

    def __init__(self, index: np.ndarray, n: int) -> None:
        self.n = n
        self.order = np.argsort(index, kind="stable")
        self.identity = bool((self.order == np.arange(index.size)).all())
        sorted_index = index[self.order]
        self.starts = np.flatnonzero(np.r_[True, sorted_index[1:] != sorted_index[:-1]])
        self.ids = sorted_index[self.starts]

    def sum(self, values: np.ndarray) -> np.ndarray:
        """``out[r, index[j]] += values[r, j]``, shape (R, n)."""
        out = np.zeros((values.shape[0], self.n))
        if values.shape[1]:
            v = values if self.identity else values[:, self.order]
            out[:, self.ids] = np.add.reduceat(v, self.starts, axis=1)
        return out
