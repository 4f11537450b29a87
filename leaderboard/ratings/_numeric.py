"""Small numerical and graph helpers shared by the models (numpy only, to keep CLI start-up fast)."""
from __future__ import annotations

import numpy as np

__all__ = ["comparison_components", "log_sigmoid_pair", "scatter_rows", "sigmoid_pair", "unreachable"]


def sigmoid_pair(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(sigmoid(x), sigmoid(-x))`` without cancellation.

    Computing ``1 - sigmoid(x)`` would round to 0 for ``x > 37``; the Newton gradients of a model
    that (almost) never loses live exactly in that tail, so both halves come from one ``exp(-|x|)``.
    """
    e = np.exp(-np.abs(x))
    inv = 1.0 / (1.0 + e)
    pos = x >= 0
    return np.where(pos, inv, e * inv), np.where(pos, e * inv, inv)


def log_sigmoid_pair(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(log sigmoid(x), log sigmoid(-x))``, stable for any ``x``."""
    soft = np.log1p(np.exp(-np.abs(x)))
    return np.minimum(x, 0.0) - soft, np.minimum(-x, 0.0) - soft


def scatter_rows(values: np.ndarray, index: np.ndarray, n: int) -> np.ndarray:
    """Batched ``np.add.at``: ``out[r, index[j]] += values[r, j]`` for ``values`` of shape (R, J).

    One flat ``bincount`` over ``r * n + index`` is several times faster than ``np.add.at``.
    """
    r = values.shape[0]
    flat = (np.arange(r, dtype=np.int64)[:, None] * n + index[None, :]).ravel()
    return np.bincount(flat, weights=values.ravel(), minlength=r * n).reshape(r, n)


def comparison_components(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Label the connected components of the undirected graph with edges ``u[j] -- v[j]``.

    Parameters
    ----------
    n : int
        Number of nodes (models).
    u, v : ndarray of int
        Edge end points.

    Returns
    -------
    ndarray of int64, shape (n,)
        Component labels 0..k-1, numbered in order of each component's smallest node.
    """
    labels = np.arange(n)
    while True:
        new = labels.copy()
        np.minimum.at(new, u, labels[v])
        np.minimum.at(new, v, labels[u])
        new = new[new]  # pointer jumping halves the remaining path lengths each sweep
        if np.array_equal(new, labels):
            break
        labels = new
    return np.unique(labels, return_inverse=True)[1].astype(np.int64)


def _reach(n: int, start: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    seen = np.zeros(n, dtype=bool)
    seen[start] = True
    while True:
        new = seen.copy()
        new[dst[seen[src]]] = True
        if np.array_equal(new, seen):
            return seen
        seen = new


def unreachable(n: int, winner: np.ndarray, loser: np.ndarray, labels: np.ndarray) -> tuple[list[int], list[int]]:
    """Check Zermelo's condition for a finite Bradley-Terry / Plackett-Luce MLE.

    The MLE exists iff, inside every connected component, the directed "beat or tied" graph is
    strongly connected: otherwise some set of models never lost to (or never beat) the rest of its
    component and its ratings run off to +inf (-inf).

    Parameters
    ----------
    n : int
        Number of models.
    winner, loser : ndarray of int
        Directed edges ``winner -> loser`` (ties give both directions).
    labels : ndarray of int, shape (n,)
        Component labels from :func:`comparison_components`.

    Returns
    -------
    unbeaten, winless : list of int
        Models that cannot be reached from their component's first model by "beat" edges (they
        never lost to it, even indirectly: rating +inf) and models that cannot reach it (-inf).
        Both are empty iff the MLE exists.
    """
    unbeaten: list[int] = []
    winless: list[int] = []
    for comp in range(int(labels.max()) + 1 if n else 0):
        members = np.flatnonzero(labels == comp)
        if members.size < 2:
            continue
        root = int(members[0])
        forward = _reach(n, root, winner, loser)
        backward = _reach(n, root, loser, winner)
        unbeaten += [int(i) for i in members if not forward[i]]
        winless += [int(i) for i in members if not backward[i]]
    return unbeaten, winless
