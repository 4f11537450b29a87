"""Small numerical and graph helpers shared by the models (numpy only, to keep CLI start-up fast)."""
from __future__ import annotations

import numpy as np

__all__ = ["comparison_components", "log_sigmoid_pair", "reach", "scatter_rows", "sigmoid_pair", "strength_status"]


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


def reach(src: np.ndarray, dst: np.ndarray, present: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Batched graph reachability: nodes reachable from ``start`` along present edges.

    Parameters
    ----------
    src, dst : ndarray of int, shape (E,)
        Directed edges ``src -> dst``.
    present : ndarray of bool, shape (R, E)
        Which edges exist in each of R graphs (e.g. bootstrap rounds).
    start : ndarray of bool, shape (R, n)
        Source nodes per graph.

    Returns
    -------
    ndarray of bool, shape (R, n)
    """
    seen = start.copy()
    while True:
        rows, edges = np.nonzero(present & seen[:, src])
        new = seen.copy()
        new[rows, dst[edges]] = True
        if np.array_equal(new, seen):
            return seen
        seen = new


def strength_status(
    src: np.ndarray, dst: np.ndarray, present: np.ndarray, components: np.ndarray, roots: np.ndarray
) -> np.ndarray:
    """Which strengths are finite relative to each component's root (Zermelo's condition).

    With directed "beat or tied" edges ``src -> dst``, the MLE is finite exactly on the strongly
    connected component of the root. A model the root beats (even indirectly) but that never beats
    back has strength -inf relative to it; one that beats the root's group but never loses to it
    has +inf; a model connected by neither is not comparable.

    Parameters
    ----------
    src, dst : ndarray of int, shape (E,)
        Edges ``winner -> loser`` (ties give both directions).
    present : ndarray of bool, shape (R, E)
        Edge presence per round.
    components : ndarray of int, shape (n,)
        Weakly connected components of the full data.
    roots : ndarray of int
        One model per component (the most-voted one, which is almost surely in the main group).

    Returns
    -------
    ndarray of float64, shape (R, n)
        0 (finite), +inf, -inf or NaN (not comparable).
    """
    r, n = present.shape[0], components.size
    start = np.zeros((r, n), dtype=bool)
    start[:, roots] = True
    forward = reach(src, dst, present, start)
    backward = reach(dst, src, present, start)
    return np.where(forward & backward, 0.0, np.where(forward, -np.inf, np.where(backward, np.inf, np.nan)))
