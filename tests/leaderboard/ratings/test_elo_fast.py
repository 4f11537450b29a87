"""Compiled online Elo (numba) against the pure-Python/numpy reference and golden numbers."""
from __future__ import annotations

import json

import numpy as np
import pytest
from ratings_support import REAL_FILE

from leaderboard.ratings import EloBattles, elo
from leaderboard.ratings.__main__ import main
from leaderboard.ratings.elo import (
    _elo_battles_reference,
    _elo_permutations_reference,
    elo_battles,
    elo_permutations,
)

OPTIONS = [
    {},
    {"exclude_ties": True},
    {"both_bad_as_tie": False},
    {"k": 32.0, "base": 2.0, "scale": 100.0, "initial": 1500.0},
]


@pytest.fixture
def kernel():
    """The compiled kernels (skips where numba is not installed: the public functions then are the reference)."""
    pytest.importorskip("numba")
    module = elo._kernel()
    assert module is not None
    return module


def golden_battles() -> EloBattles:
    """8 models, 3000 battles from plain numpy draws (seeded), with ties and both-bad ties."""
    g = np.random.default_rng(20260101)
    m, n = 8, 3000
    a = g.integers(0, m, n)
    b = (a + g.integers(1, m, n)) % m
    strength = np.linspace(1.0, -1.0, m)
    p = 1 / (1 + np.exp(-(strength[a] - strength[b])))
    u = g.random(n)
    out = np.where(u < 0.15, np.where(u < 0.06, 3, 2), np.where(g.random(n) < p, 0, 1))
    return EloBattles(tuple(f"m{i}" for i in range(m)), a, b, out)


# Final ratings from the implementation before the compiled path (pure Python loop), on golden_battles().
GOLDEN_RATINGS = {
    0: [1111.6492436892217, 1095.8453074529398, 1079.3513588065714, 1015.8866786122494,
        979.9634251376643, 915.69604535035, 894.944289608469, 906.6636513425397],
    1: [1142.4921322645405, 1115.0488515184675, 1091.7199571869478, 1026.8977357716037,
        972.3396108949048, 898.482305821505, 866.1568609479758, 886.8625455940578],
    2: [1120.4069161805885, 1101.8409466363817, 1082.5994545369304, 1020.0644791624909,
        978.1786822985772, 909.3749233512167, 886.55133838469, 900.9832594491234],
    3: [1614.758950971685, 1567.0764343873373, 1522.7850289423236, 1437.3349327251085,
        1525.149892106319, 1417.380326218037, 1490.07274121912, 1425.4416934300682],
}
# First and last of 20 permutation replays with default_rng(5), same implementation (rounded to 1e-9).
GOLDEN_REPLAYS = {
    0: [[1117.963897227, 1112.742046615, 1053.779358576, 1026.931258877,
         971.530556697, 944.846797996, 878.575822614, 893.630261399],
        [1137.426967584, 1103.536034028, 1070.846909423, 1025.454072822,
         988.080479478, 921.646152168, 872.229337127, 880.78004737]],
    3: [[1548.762950581, 1591.544623986, 1567.841147591, 1499.326812854,
         1518.485753673, 1483.510718236, 1370.832400203, 1419.695592876],
        [1640.294223549, 1619.285084715, 1539.643441973, 1506.620943748,
         1518.054946906, 1406.756644837, 1349.187937586, 1420.156776687]],
}


@pytest.mark.parametrize("case", range(len(OPTIONS)))
def test_elo_battles_equals_the_reference_and_golden_numbers(case):
    battles, opts = golden_battles(), OPTIONS[case]
    fast = elo_battles(battles, **opts)
    np.testing.assert_allclose(fast, _elo_battles_reference(battles, **opts), rtol=0, atol=1e-9)
    np.testing.assert_allclose(fast, GOLDEN_RATINGS[case], rtol=0, atol=1e-9)
    assert fast.mean() == pytest.approx(opts.get("initial", 1000.0), abs=1e-9)


@pytest.mark.parametrize("case", range(len(OPTIONS)))
def test_elo_permutations_equal_the_reference_with_the_same_seed(case):
    battles, opts = golden_battles(), OPTIONS[case]
    rng_fast, rng_ref = np.random.default_rng(5), np.random.default_rng(5)
    fast = elo_permutations(battles, 20, rng_fast, **opts)
    ref = _elo_permutations_reference(battles, 20, rng_ref, **opts)
    assert fast.shape == (20, 8)
    np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-9)
    if case in GOLDEN_REPLAYS:
        np.testing.assert_allclose(fast[[0, -1]], GOLDEN_REPLAYS[case], rtol=0, atol=2e-9)
    # Both leave the generator where 20 calls of rng.permutation(N) leave it.
    assert rng_fast.integers(0, 1 << 62) == rng_ref.integers(0, 1 << 62)


@pytest.mark.parametrize("n", [2, 3, 4, 5, 17, 1 << 16, (1 << 16) + 1, 100_003])
def test_compiled_draws_are_numpy_permutations(kernel, n):
    ours, theirs = np.random.default_rng(n), np.random.default_rng(n)
    for _ in range(3):
        swaps = np.zeros(n, dtype=np.int32)
        kernel.draw_swaps(ours, n, swaps)
        order = np.arange(n, dtype=np.int32)
        kernel._apply_swaps(order, swaps)
        np.testing.assert_array_equal(order, theirs.permutation(n))
    assert ours.random() == theirs.random()
    assert kernel.draws_match_numpy()


def test_replays_do_not_depend_on_the_number_of_threads(kernel):
    battles = golden_battles()
    a, b, s = elo._scores(battles, False, True)
    runs = [kernel.permutation_replays(a, b, s, 8, 9, np.random.default_rng(3), k=4.0, log_base=np.log(10) / 400,
                                       initial=1000.0, workers=w) for w in (1, 2, 3)]
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0], runs[2])


def test_no_battles():
    empty = EloBattles(("A", "B", "C"), np.array([], dtype=np.int64), np.array([], dtype=np.int64),
                       np.array([], dtype=np.int8))
    assert elo_battles(empty).tolist() == [1000.0] * 3
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(elo_permutations(empty, 4, rng), np.full((4, 3), 1000.0))
    assert rng.random() == np.random.default_rng(0).random()  # nothing drawn
    # Every battle excluded leaves nothing to replay either.
    ties = EloBattles(("A", "B"), np.array([0, 1]), np.array([1, 0]), np.array([2, 3]))
    assert elo_battles(ties, exclude_ties=True).tolist() == [1000.0, 1000.0]
    assert elo_permutations(ties, 3, np.random.default_rng(0), exclude_ties=True).tolist() == [[1000.0] * 2] * 3
    assert elo_permutations(ties, 0, np.random.default_rng(0)).shape == (0, 2)


def test_one_model_pair():
    one = EloBattles(("A", "B"), np.array([0]), np.array([1]), np.array([0]))
    assert elo_battles(one).tolist() == [1002.0, 998.0]
    np.testing.assert_array_equal(elo_permutations(one, 3, np.random.default_rng(0)), [[1002.0, 998.0]] * 3)
    g = np.random.default_rng(1)
    n = 501
    a = g.integers(0, 2, n)
    pair = EloBattles(("A", "B"), a, 1 - a, g.integers(0, 4, n))
    for opts in OPTIONS:
        np.testing.assert_allclose(elo_battles(pair, **opts), _elo_battles_reference(pair, **opts), rtol=0, atol=1e-9)
        np.testing.assert_allclose(elo_permutations(pair, 5, np.random.default_rng(2), **opts),
                                   _elo_permutations_reference(pair, 5, np.random.default_rng(2), **opts),
                                   rtol=0, atol=1e-9)


def test_more_models_than_fit_a_32_bit_packed_battle():
    # Past 2^14 models a battle (a, b, outcome) no longer packs into 31 bits: the compiled path uses int64.
    m, n = (1 << 14) + 3, 400
    g = np.random.default_rng(4)
    a = g.integers(0, m, n)
    battles = EloBattles(tuple(f"m{i}" for i in range(m)), a, (a + g.integers(1, m, n)) % m, g.integers(0, 4, n))
    np.testing.assert_allclose(elo_permutations(battles, 4, np.random.default_rng(6)),
                               _elo_permutations_reference(battles, 4, np.random.default_rng(6)), rtol=0, atol=1e-9)


def test_without_numba_the_reference_runs(monkeypatch):
    battles = golden_battles()
    monkeypatch.setattr(elo, "_kernel", lambda: None)
    np.testing.assert_array_equal(elo_battles(battles), _elo_battles_reference(battles))
    np.testing.assert_array_equal(elo_permutations(battles, 3, np.random.default_rng(1)),
                                  _elo_permutations_reference(battles, 3, np.random.default_rng(1)))


def test_a_legacy_random_state_takes_the_reference_path():
    battles = golden_battles()
    np.testing.assert_array_equal(elo_permutations(battles, 3, np.random.RandomState(1)),
                                  _elo_permutations_reference(battles, 3, np.random.RandomState(1)))


class NowhereWritable:
    """A numba cache locator that finds no writable directory (as in a read-only checkout and home)."""

    @classmethod
    def from_function(cls, py_func, py_file):
        return None


def test_kernels_compile_without_a_writable_cache(kernel, monkeypatch):
    import numba

    monkeypatch.setattr(numba.config, "CACHE_LOCATOR_CLASSES", f"{__name__}.NowhereWritable")

    def twice(x):
        return 2 * x

    with pytest.raises(RuntimeError, match="no locator"):
        numba.njit(cache=True)(twice)
    assert kernel._jit(twice)(21) == 42  # compiled for this process only


def _cli_rows(capsys, argv: list[str]) -> list[dict]:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_elo_on_the_demo_file_is_unchanged(capsys, monkeypatch):
    argv = [str(REAL_FILE), "--method", "elo"]
    fast = _cli_rows(capsys, argv)
    # Figures of the implementation before the compiled path (seed 0, 100 permutations).
    top = fast[0]
    assert top["model"] == "imagenhub_PlayGroundV2_generation"
    assert top["rating"] == pytest.approx(1127.107974356074, abs=1e-9)
    assert top["ci_low"] == pytest.approx(1121.5294366011976, abs=1e-9)
    assert top["ci_high"] == pytest.approx(1156.685364114152, abs=1e-9)
    assert fast[-1]["model"] == "imagenhub_CycleDiffusion_edition"
    assert fast[-1]["rating"] == pytest.approx(979.2578686906375, abs=1e-9)
    monkeypatch.setattr(elo, "_kernel", lambda: None)
    reference = _cli_rows(capsys, argv)
    assert [(r["model"], r["rank"], r["rank_ub"], r["votes"]) for r in fast] == \
        [(r["model"], r["rank"], r["rank_ub"], r["votes"]) for r in reference]
    for key in ("rating", "ci_low", "ci_high"):
        np.testing.assert_allclose([r[key] for r in fast], [r[key] for r in reference], rtol=0, atol=1e-9)
