"""Outcome codes and the validation shared by the data containers."""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

A_WINS, B_WINS, TIE, BOTH_BAD = 0, 1, 2, 3
N_OUTCOMES = 4
#: FastChat ``winner`` strings -> outcome codes.
OUTCOME_CODES: dict[str, int] = {"model_a": A_WINS, "model_b": B_WINS, "tie": TIE, "tie (bothbad)": BOTH_BAD}

# Above this many (a, b, outcome) cells a dense bincount table would cost more memory than sorting.
_DENSE_CELL_LIMIT = 1 << 22



def _models_tuple(models: Iterable[str]) -> tuple[str, ...]:
    names = tuple(models)
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise ValueError(f"models[{i}] must be a non-empty string, got {name!r}")
    if len(set(names)) != len(names):
        seen: set[str] = set()
        dup = next(n for n in names if n in seen or seen.add(n))  # type: ignore[func-returns-value]
        raise ValueError(f"duplicate model name {dup!r} in models")
    return names


def _first_bad(mask: npt.ArrayLike) -> int:
    return int(np.flatnonzero(mask)[0])


def _int_array(x: object, name: str, n: int | None = None) -> np.ndarray:
    arr = np.asarray(x)
    if arr.size == 0:
        arr = arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has length {arr.shape[0]}, expected {n}")
    return arr.astype(np.int64)


def _model_index_array(x: object, name: str, n_models: int, n: int | None = None) -> np.ndarray:
    arr = _int_array(x, name, n)
    bad = (arr < 0) | (arr >= n_models)
    if bad.any():
        i = _first_bad(bad)
        raise ValueError(f"{name}[{i}] = {arr[i]} is not a model index in [0, {n_models})")
    return arr


def _outcome_array(x: object, n: int) -> np.ndarray:
    arr = _int_array(x, "outcome", n)
    bad = (arr < 0) | (arr >= N_OUTCOMES)
    if bad.any():
        i = _first_bad(bad)
        raise ValueError(f"outcome[{i}] = {arr[i]} is not an outcome code in 0..3")
    return arr.astype(np.int8)


def _weight_array(x: object | None, n: int) -> np.ndarray:
    if x is None:
        return np.ones(n)
    arr = np.asarray(x, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"weight has shape {arr.shape}, expected ({n},)")
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        i = _first_bad(bad)
        raise ValueError(f"weight[{i}] = {arr[i]} must be finite and >= 0")
    return arr


def _check_distinct(a: np.ndarray, b: np.ndarray, models: tuple[str, ...]) -> None:
    same = a == b
    if same.any():
        i = _first_bad(same)
        raise ValueError(f"row {i}: model {models[a[i]]!r} cannot battle itself (a == b)")


def _frozen(arr: np.ndarray) -> np.ndarray:
    # Frozen dataclasses should not hand out mutable arrays: a caller editing `a` in place would
    # silently desynchronise it from `weight`.
    arr = np.array(arr, copy=True)
    arr.setflags(write=False)
    return arr


def union_models(*model_lists: Sequence[str]) -> tuple[str, ...]:
    """Sorted union of several model lists.

    Parameters
    ----------
    *model_lists : sequence of str
        Model name lists, e.g. ``pairs.models`` and ``rankings.models``.

    Returns
    -------
    tuple of str
        Every name that appears in any list, sorted, each once.
    """
    return tuple(sorted({name for names in model_lists for name in names}))


def _remap(old: tuple[str, ...], new: tuple[str, ...]) -> np.ndarray:
    position = {name: i for i, name in enumerate(new)}
    missing = [name for name in old if name not in position]
    if missing:
        raise ValueError(f"models {missing!r} are missing from the new model list")
    return np.array([position[name] for name in old], dtype=np.int64)


