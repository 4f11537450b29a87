"""Held-out evidence for the tie models: an independent implementation, the half completion, planted truths."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from ratings_support import REAL_FILE, names, simulate_pairs
from scipy.optimize import minimize

from leaderboard.ratings import PairCounts, PairwiseObjective, pair_probabilities
from leaderboard.ratings._numeric import sigmoid_pair
from leaderboard.ratings.tie_selection import HALF_TIE_CAP, _split, tie_log_probabilities, tie_model_evidence


# ------------------------------------------------------------------------------------------ helpers
def _constant_tie_battles(theta: np.ndarray, n: int, rng: np.random.Generator, tau: float):
    """Ties at rate tau whatever the strengths; otherwise plain BT."""
    m = theta.size
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    p_a, _ = sigmoid_pair(theta[a] - theta[b])
    out = np.where(rng.random(n) < tau, 2, np.where(rng.random(n) < p_a, 0, 1))
    return a, b, out


def _rao_kupper_battles(theta: np.ndarray, n: int, rng: np.random.Generator, eta: float):
    m = theta.size
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    d = theta[a] - theta[b]
    p_a, p_b = 1 / (1 + np.exp(eta - d)), 1 / (1 + np.exp(eta + d))
    u = rng.random(n)
    return a, b, np.where(u < p_a, 0, np.where(u < p_a + p_b, 1, 2))


def _evidence(gen, *, seed: int, m: int = 10, n: int = 20000, spread: float = 1.0):
    rng = np.random.default_rng(seed)
    theta = rng.normal(0.0, spread, m)
    return tie_model_evidence(PairCounts.from_arrays(names(m), *gen(theta, n, rng)), seed=seed)


# --------------------------------------------------------------------------- the probabilities used
def test_the_tie_models_log_probabilities_are_those_of_the_fitted_models():
    d = np.linspace(-6, 6, 25)
    for ties, eta in (("davidson", -0.4), ("rao-kupper", 0.3)):
        np.testing.assert_allclose(np.exp(tie_log_probabilities(d, ties, eta=eta)),
                                   pair_probabilities(d, ties, eta), rtol=1e-12, atol=1e-300)


def test_ties_as_half_keep_their_expected_score_and_a_constant_tie_rate_where_possible():
    tau = 0.3
    d = np.array([-1.5, -0.4, 0.0, 0.7, 1.2])  # sigmoid(-|d|) >= tau / 2 / 0.9 for all: no cap
    p = np.exp(tie_log_probabilities(d, "half", tie_rate=tau))
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(p[:, 2], tau, rtol=1e-12)
    np.testing.assert_allclose(p[:, 0] + p[:, 2] / 2, 1 / (1 + np.exp(-d)), rtol=1e-12)  # the expected score
    # Where a constant rate would leave the weaker side no wins, ties are capped and it keeps a tenth of its score.
    far = np.array([-4.0, 3.0])
    q = np.exp(tie_log_probabilities(far, "half", tie_rate=tau))
    weak = 1 / (1 + np.exp(np.abs(far)))
    np.testing.assert_allclose(q[:, 2], 2 * HALF_TIE_CAP * weak, rtol=1e-12)
    np.testing.assert_allclose(np.minimum(q[:, 0], q[:, 1]), (1 - HALF_TIE_CAP) * weak, rtol=1e-9)
    np.testing.assert_allclose(q.sum(axis=-1), 1.0, rtol=1e-12)


def test_the_split_sends_every_vote_to_exactly_one_fold_at_random():
    counts = np.array([[120.0, 30.0, 0.0], [7.0, 0.0, 2.5], [0.0, 0.0, 0.0]])
    folds = _split(counts, 5, np.random.default_rng(3))
    assert folds.shape == (5, 3, 3)
    np.testing.assert_allclose(folds.sum(axis=0), counts)  # a fractional weight's 0.5 goes whole to one fold
    assert (folds >= 0).all() and np.isin(folds[:, 1, 2], (0.0, 0.5, 1.0, 1.5, 2.0, 2.5)).all()
    big = _split(np.full((1, 1), 1e6), 4, np.random.default_rng(0))[:, 0, 0]
    assert np.abs(big / 1e6 - 0.25).max() < 0.002  # binomial sd at 1e6: 0.0004


# ------------------------------------------------------------------------------------- golden case
def _neg_loglik(params, pa, pb, w, ties, l2):
    """Penalised negative log-likelihood written out per outcome from the model definitions."""
    m = int(max(pa.max(), pb.max())) + 1
    theta = params[:m]
    d = theta[pa] - theta[pb]
    if ties == "half":
        la, lb = -np.logaddexp(0, -d), -np.logaddexp(0, d)
        ll = w[:, 0] * la + w[:, 1] * lb + w[:, 2] * 0.5 * (la + lb)
    else:
        nu = math.exp(params[m])
        sa, sb = np.exp(theta[pa]), np.exp(theta[pb])
        if ties == "davidson":
            den = sa + sb + nu * np.sqrt(sa * sb)
            probs = [sa / den, sb / den, nu * np.sqrt(sa * sb) / den]
        else:
            den_a, den_b = sa + nu * sb, sb + nu * sa
            probs = [sa / den_a, sb / den_b, (nu**2 - 1) * sa * sb / (den_a * den_b)]
        ll = sum(w[:, k] * np.log(probs[k]) for k in range(3))
    return -ll.sum() + 0.5 * l2 * (theta**2).sum()


def _reference(pairs: PairCounts, folds: int, seed: int, l2: float) -> dict[str, float]:
    """K-fold held-out log-likelihood per vote, fitted with scipy on the written-out likelihoods."""
    half = PairwiseObjective(pairs, "half")
    pa, pb, m = half.pa, half.pb, half.n_models
    counts = np.stack([w[0] for w in half.base_weights()], axis=1)
    test = _split(counts, folds, np.random.default_rng(seed))
    out = {}
    for ties in ("half", "davidson", "rao-kupper"):
        total = 0.0
        for k in range(folds):
            train = counts - test[k]
            x0 = np.r_[np.zeros(m), [] if ties == "half" else [0.5]]
            res = minimize(_neg_loglik, x0, args=(pa, pb, train, ties, l2), method="BFGS", options={"gtol": 1e-10})
            theta, d = res.x[:m], res.x[pa] - res.x[pb]
            if ties == "half":
                tau = (train[:, 2].sum() + 0.5) / (train.sum() + 1)
                sa = 1 / (1 + np.exp(-d))
                tie = np.minimum(tau, 2 * HALF_TIE_CAP * np.minimum(sa, 1 - sa))
                probs = np.stack([sa - tie / 2, 1 - sa - tie / 2, tie], axis=1)
            else:
                probs = pair_probabilities(theta[pa] - theta[pb], ties, res.x[m])
            total += float((test[k] * np.log(np.where(test[k] > 0, probs, 1.0))).sum())
        out[ties] = total / counts.sum()
    return out


def test_held_out_log_likelihoods_match_an_independent_implementation(rng):
    theta = np.array([0.9, 0.3, -0.2, -1.0])
    a, b, out = simulate_pairs(theta, 400, rng, nu=0.7, both_bad=0.3)
    pairs = PairCounts.from_arrays(names(4), a, b, out)
    evidence = tie_model_evidence(pairs, folds=3, seed=11, l2=0.05)
    want = _reference(pairs, 3, 11, 0.05)
    for ties, value in want.items():
        assert evidence.score(ties).mean == pytest.approx(value, abs=2e-7), ties
    assert evidence.choice == max(want, key=want.get)
    assert evidence.n_votes == 400 and evidence.n_ties == float(np.isin(out, (2, 3)).sum())


def test_the_score_splits_into_its_tie_and_decisive_parts_and_differences_are_paired(small_pairs):
    pairs, _ = small_pairs
    evidence = tie_model_evidence(pairs, seed=4)
    decisive_share = 1 - evidence.n_ties / evidence.n_votes
    best = evidence.score(evidence.choice)
    assert best.difference == 0.0 and best.difference_se == 0.0
    for s in evidence.scores:
        assert s.mean == pytest.approx(s.tie + decisive_share * s.decisive, abs=1e-12)
        assert s.difference == pytest.approx(s.mean - best.mean, abs=1e-12)
        assert s.mean <= best.mean
        if s is not best:
            assert 0 < s.difference_se < s.se  # both models predict the same votes
    assert set(evidence.to_dict()["scores"]) == {"half", "davidson", "rao-kupper"}


def test_the_split_is_seeded(small_pairs):
    pairs, _ = small_pairs
    one, again, other = (tie_model_evidence(pairs, seed=s).to_dict() for s in (1, 1, 2))
    assert one == again
    assert one["scores"]["davidson"]["mean"] != other["scores"]["davidson"]["mean"]


# ------------------------------------------------------------------------------------ planted truth
@pytest.mark.parametrize("seed", [0, 1])
def test_davidson_ties_pick_davidson(seed):
    evidence = _evidence(lambda t, n, r: simulate_pairs(t, n, r, nu=0.6), seed=seed)
    assert evidence.choice == "davidson"
    half = evidence.score("half")
    assert half.difference < -2 * half.difference_se  # ties as 1/2 is clearly behind


@pytest.mark.parametrize("seed", [0, 1])
def test_rao_kupper_ties_pick_rao_kupper(seed):
    evidence = _evidence(lambda t, n, r: _rao_kupper_battles(t, n, r, eta=0.5), seed=seed)
    assert evidence.choice == "rao-kupper"
    assert evidence.score("half").difference < -2 * evidence.score("half").difference_se


@pytest.mark.parametrize("seed", [0, 1])
def test_ties_independent_of_strength_pick_ties_as_half(seed):
    evidence = _evidence(lambda t, n, r: _constant_tie_battles(t, n, r, tau=0.3), seed=seed)
    assert evidence.choice == "half"
    # Davidson's tie rate falls with the gap in strength, which these ties do not.
    assert evidence.score("davidson").tie < evidence.score("half").tie


def test_without_ties_only_ties_as_half_can_be_scored():
    evidence = _evidence(lambda t, n, r: simulate_pairs(t, n, r), seed=0, n=2000)
    assert evidence.choice == "half" and [s.ties for s in evidence.scores] == ["half"]
    assert evidence.unavailable == {"davidson": "no ties in the data", "rao-kupper": "no ties in the data"}
    assert evidence.score("half").tie == pytest.approx(0.0, abs=1e-15)  # P(no tie) = 1: nothing lost on ties
    assert evidence.score("half").mean == pytest.approx(evidence.score("half").decisive, abs=1e-12)


def test_a_fold_without_a_tie_leaves_the_tie_models_out():
    models = names(3)
    pairs = PairCounts.from_records([(models[0], models[1], "model_a", 30), (models[1], models[2], "model_a", 30),
                                     (models[2], models[0], "model_a", 10), (models[0], models[2], "tie", 1)])
    evidence = tie_model_evidence(pairs, folds=4, seed=0)
    assert evidence.unavailable == {"davidson": "too few ties: a training fold has none",
                                    "rao-kupper": "too few ties: a training fold has none"}
    assert np.isfinite(evidence.score("half").mean)  # the held-out tie still has a probability


def test_a_model_that_never_lost_is_scored_not_refused(rng):
    models = names(5)
    a, b, out = simulate_pairs(np.array([0.5, 0.0, -0.5, 0.2]), 1500, rng, nu=0.5)
    # A fifth model with three wins and nothing else: its MLE is +inf, the ridge keeps every fold finite.
    pairs = PairCounts.from_arrays(models, np.r_[a, [4, 4, 4]], np.r_[b, [0, 1, 2]], np.r_[out, [0, 0, 0]])
    evidence = tie_model_evidence(pairs)
    assert all(np.isfinite(s.mean) for s in evidence.scores) and len(evidence.scores) == 3


def test_both_bad_is_a_tie_or_left_out(small_pairs):
    pairs, _ = small_pairs
    both_bad = float(pairs.weight[pairs.outcome == 3].sum())
    kept = tie_model_evidence(pairs)
    dropped = tie_model_evidence(pairs, both_bad_as_tie=False)
    assert both_bad > 0 and kept.n_votes == pairs.total and dropped.n_votes == pairs.total - both_bad
    assert dropped.n_ties == kept.n_ties - both_bad


@pytest.mark.parametrize(("kwargs", "message"), [({"folds": 1}, "folds"), ({"l2": 0.0}, "l2")])
def test_bad_arguments_are_refused(small_pairs, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tie_model_evidence(small_pairs[0], **kwargs)


def test_style_rows_are_refused():
    pairs = PairCounts.from_arrays(names(2), [0, 1], [1, 0], [0, 2], features=np.ones((2, 1)), feature_names=["x"])
    with pytest.raises(ValueError, match="without style"):
        tie_model_evidence(pairs)


# ------------------------------------------------------------------------------------ the CLI's default
def _cli(capsys, *args: str) -> tuple[int, list[dict], str]:
    from leaderboard.ratings.__main__ import main

    code = main([*args, "--ci", "sandwich", "--bootstrap", "1"])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else [], err


def _csv(tmp_path, winners: list[str]) -> str:
    path = tmp_path / "b.csv"
    path.write_text("model_a,model_b,winner\n" + "".join(f"m1,m2,{w}\n" if i % 2 else f"m2,m3,{w}\n"
                                                         for i, w in enumerate(winners)))
    return str(path)


def test_the_cli_defaults_to_rao_kupper_for_bt_and_to_half_where_it_cannot_fit(capsys, tmp_path):
    code, default, _ = _cli(capsys, str(REAL_FILE))
    _, rao_kupper, _ = _cli(capsys, str(REAL_FILE), "--ties", "rao-kupper")
    _, half, _ = _cli(capsys, str(REAL_FILE), "--ties", "half")
    assert code == 0 and default == rao_kupper != half
    # No tie in the file: Rao-Kupper's parameter has no finite estimate; the default rates with ties as 1/2.
    no_ties = _csv(tmp_path, ["model_a", "model_b", "model_b", "model_a", "model_a", "model_a"])
    code, rows, _ = _cli(capsys, no_ties)
    assert code == 0 and len(rows) == 3 and rows == _cli(capsys, no_ties, "--ties", "half")[1]
    # One tie and one win per pair: no finite tie parameter either; an explicit tie model still fails loudly.
    few = _csv(tmp_path, ["tie", "tie", "model_a", "model_b"])
    code, rows, err = _cli(capsys, few)
    assert code == 0 and len(rows) == 3 and rows == _cli(capsys, few, "--ties", "half")[1]
    assert "rated with --ties half" in err
    assert _cli(capsys, few, "--ties", "rao-kupper")[0] == 1
    assert _cli(capsys, str(REAL_FILE), "--method", "pl")[0] == 0  # Plackett-Luce keeps ties as 1/2
