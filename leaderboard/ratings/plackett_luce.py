"""Plackett-Luce for K-wise votes, with tied groups, optionally mixed with pairwise battles.

Likelihood of one ranking with tie groups ``G_0, G_1, ..., G_last`` (best first)::

    sum over groups g before the last, over i in G_g:  s_i - log( sum_{j in G_g u G_g+1 u ... } e^{s_j} )

i.e. every member of a tied group is "chosen" from the set of items still in play (its own group
and all later groups), and the last group contributes nothing.

Why this rule:

* it is the Cox partial likelihood with Breslow's handling of tied events, the standard way to
  treat ties in exactly this "sequential choice" likelihood: concave, with a closed-form gradient
  and Hessian costing O(K) per stage;
* it asserts only what a tied group says -- each member beat everything ranked below it -- and
  invents no order inside the group;
* the last group is the unordered remainder, so the two standard partial votes come out exactly:
  a best-of-K vote ``[winner], [others]`` is the top-1 choice probability
  ``e^{s_w} / sum_all e^{s_j}``, and a top-k list ``[i1], ..., [ik], [rest]`` is the usual partial PL;
* for K = 2 a decisive vote is ``log sigmoid(s_w - s_l)``: Plackett-Luce on pairs *is*
  Bradley-Terry. A pairwise tie, however, is a single group and carries no information under this
  rule, so pairwise ties should be passed as :class:`PairCounts` (where they count as 1/2 win each,
  like Chatbot Arena); :class:`MixedObjective` fits both kinds of data with one ``theta``.

Breslow's rule is known to shrink strengths slightly when groups are large (members of a group of
m are each credited with probability < 1/m of being first among their own group); for arena votes,
where ties among K-wise winners are rare, this is negligible.
"""
from __future__ import annotations

import numpy as np

from ._numeric import scatter_rows
from .bradley_terry import PairwiseObjective
from .data import RankingCounts

__all__ = ["MixedObjective", "RankingObjective"]


class RankingObjective:
    """Batched negative log-likelihood of Plackett-Luce (Breslow ties) on :class:`RankingCounts`.

    Parameters
    ----------
    rankings : RankingCounts
        K-wise votes.
    """

    extra_names: tuple[str, ...] = ()

    def __init__(self, rankings: RankingCounts) -> None:
        self.models = rankings.models
        self.n_models = self.n_params = rankings.n_models
        items, group = rankings.items, rankings.group
        self._w = np.asarray(rankings.weight, dtype=np.float64)
        self._valid = items >= 0
        self._items = np.where(self._valid, items, 0)
        n_groups = group.max(axis=1) + 1
        # One "stage" per (row, non-last group): the members of the group are chosen from the risk set.
        rows, stage_group = [], []
        for g in range(int(n_groups.max()) - 1):
            r = np.flatnonzero(n_groups > g + 1)
            rows.append(r)
            stage_group.append(np.full(r.size, g))
        self._row = np.concatenate(rows)
        sg = np.concatenate(stage_group)[:, None]
        grp = group[self._row]
        self._chosen = grp == sg
        self._risk = self._valid[self._row] & (grp >= sg)
        self._mult = self._chosen.sum(axis=1).astype(np.float64)
        self._stage_items = self._items[self._row]
        k = items.shape[1]
        self._hess_index = (self._stage_items[:, :, None] * self.n_models + self._stage_items[:, None, :]).reshape(
            -1, k * k)

    def base_weights(self) -> tuple[np.ndarray, ...]:
        """Votes per ranking, as a batch of one round."""
        return (self._w[None],)

    def cell_counts(self) -> list[np.ndarray]:
        """Rankings are the resampling units."""
        return [self._w]

    def weights_from_cells(self, counts: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        """Resampled counts are the weights."""
        return (counts[0],)

    def observed(self, weights: tuple[np.ndarray, ...]) -> np.ndarray:
        """Votes per model in each round, shape (R, M)."""
        w = weights[0]
        per_item = np.broadcast_to(w[:, :, None], (*w.shape, self._items.shape[1]))[:, self._valid]
        return scatter_rows(per_item, self._items[self._valid], self.n_models)

    def edge_cells(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Directed edges: each chosen item "beat" every other item of its risk set (cell = ranking)."""
        k = self._chosen.shape[1]
        pair = self._chosen[:, :, None] & self._risk[:, None, :] & ~np.eye(k, dtype=bool)[None]
        s, i, j = np.nonzero(pair)
        return self._stage_items[s, i], self._stage_items[s, j], np.zeros(s.size, dtype=np.int64), self._row[s]

    def mask_units(self, weights: tuple[np.ndarray, ...], keep: np.ndarray) -> tuple[np.ndarray, ...]:
        """Zero the votes that involve a model not in ``keep`` (R, M) in each round."""
        w = weights[0].copy()
        w[(self._valid[None] & ~keep[:, self._items]).any(axis=2)] = 0.0
        return (w,)

    def x0(self) -> np.ndarray:
        """Equal strengths."""
        return np.zeros(self.n_params)

    def feasible(self, x: np.ndarray) -> np.ndarray:
        """Unconstrained."""
        return np.ones(x.shape[0], dtype=bool)

    def _stage_probs(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = np.take(x, self._stage_items, axis=1)  # (R, S, K), C-ordered (see PairwiseObjective)
        masked = np.where(self._risk, s, -np.inf)
        top = masked.max(axis=2, keepdims=True)
        e = np.exp(masked - top)
        tot = e.sum(axis=2, keepdims=True)
        lse = (top + np.log(tot))[..., 0]
        return s, e / tot, lse

    def derivatives(self, x: np.ndarray, weights: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Negative log-likelihood, gradient and Hessian for each round."""
        m = self.n_models
        ws = weights[0][:, self._row]  # (R, S)
        s, p, lse = self._stage_probs(x)
        chosen_sum = np.where(self._chosen, s, 0.0).sum(axis=2)
        value = -(ws * (chosen_sum - self._mult * lse)).sum(axis=1)
        # d loglik / d s_k for each stage position: [k chosen] - |G| p_k
        dl = ws[..., None] * (self._chosen - self._mult[:, None] * p)
        grad = -scatter_rows(dl.reshape(dl.shape[0], -1), self._stage_items.ravel(), m)
        # -Hessian of a stage: |G| (diag(p) - p p')
        wp = (ws * self._mult)[..., None] * p
        block = -wp[..., :, None] * p[..., None, :]
        k = p.shape[2]
        idx = np.arange(k)
        block[..., idx, idx] += wp
        hess = scatter_rows(block.reshape(block.shape[0], -1), self._hess_index.ravel(), m * m)
        return value, grad, hess.reshape(-1, m, m)

    def information(self, x: np.ndarray) -> np.ndarray:
        """Sum over votes of score outer products at ``x`` (M,)."""
        m = self.n_models
        _, p, _ = self._stage_probs(x[None])
        dl = (self._chosen - self._mult[:, None] * p[0])  # per-vote score contributions (S, K)
        flat = self._row[:, None] * m + self._stage_items
        scores = np.bincount(flat.ravel(), dl.ravel(), minlength=self._w.size * m).reshape(self._w.size, m)
        return scores.T @ (self._w[:, None] * scores)


class MixedObjective:
    """Pairwise battles (ties as 1/2) plus K-wise votes sharing one ``theta``.

    Parameters
    ----------
    pairs : PairwiseObjective
        Must have no extra parameters (``ties="half"``, no style control).
    rankings : RankingObjective
        On the same ``models``.
    """

    extra_names: tuple[str, ...] = ()

    def __init__(self, pairs: PairwiseObjective, rankings: RankingObjective) -> None:
        if pairs.n_params != pairs.n_models:
            raise ValueError("mixing pairwise and K-wise data needs ties='half' and no style control")
        if pairs.models != rankings.models:
            raise ValueError("pairs and rankings must share models (use align_models)")
        self.parts = (pairs, rankings)
        self.models = pairs.models
        self.n_models = self.n_params = pairs.n_models
        self._split = len(pairs.base_weights())

    def _each(self, weights: tuple[np.ndarray, ...]) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
        return weights[: self._split], weights[self._split:]

    def base_weights(self) -> tuple[np.ndarray, ...]:
        """Concatenated weights of both parts."""
        return self.parts[0].base_weights() + self.parts[1].base_weights()

    def cell_counts(self) -> list[np.ndarray]:
        """One resampling stratum per data kind."""
        return self.parts[0].cell_counts() + self.parts[1].cell_counts()

    def weights_from_cells(self, counts: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        """Split the strata back to each part."""
        n0 = len(self.parts[0].cell_counts())
        return self.parts[0].weights_from_cells(counts[:n0]) + self.parts[1].weights_from_cells(counts[n0:])

    def observed(self, weights: tuple[np.ndarray, ...]) -> np.ndarray:
        """Battles plus votes per model."""
        wp, wr = self._each(weights)
        return self.parts[0].observed(wp) + self.parts[1].observed(wr)

    def edge_cells(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Union of both parts' edges; the K-wise strata come after the pairwise ones."""
        n0 = len(self.parts[0].cell_counts())
        s0, d0, t0, c0 = self.parts[0].edge_cells()
        s1, d1, t1, c1 = self.parts[1].edge_cells()
        return (np.concatenate([s0, s1]), np.concatenate([d0, d1]), np.concatenate([t0, t1 + n0]),
                np.concatenate([c0, c1]))

    def mask_units(self, weights: tuple[np.ndarray, ...], keep: np.ndarray) -> tuple[np.ndarray, ...]:
        """Apply each part's mask."""
        wp, wr = self._each(weights)
        return self.parts[0].mask_units(wp, keep) + self.parts[1].mask_units(wr, keep)

    def x0(self) -> np.ndarray:
        """Equal strengths."""
        return np.zeros(self.n_params)

    def feasible(self, x: np.ndarray) -> np.ndarray:
        """Unconstrained."""
        return np.ones(x.shape[0], dtype=bool)

    def derivatives(self, x: np.ndarray, weights: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sum of both parts."""
        wp, wr = self._each(weights)
        f0, g0, h0 = self.parts[0].derivatives(x, wp)
        f1, g1, h1 = self.parts[1].derivatives(x, wr)
        return f0 + f1, g0 + g1, h0 + h1

    def information(self, x: np.ndarray) -> np.ndarray:
        """Battles and votes are independent units: their score outer products add."""
        return self.parts[0].information(x) + self.parts[1].information(x)
