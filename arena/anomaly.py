"""Anomalous-voter detection after Chatbot Arena (Chiang et al. 2024, §5.1, Eq. 10): the pure core.

No Django here: plain numbers and numpy arrays in, numbers and dataclasses out. The service
(:mod:`arena.moderation`) reads votes, builds the pair histories and calls these functions.

What is implemented, exactly
----------------------------
**Comparisons.** A vote is tested as one comparison of an *ordered* pair of contenders: the model
shown in the first (lower) position and the one in the second, with the outcome seen from the first:
:data:`WIN`, :data:`LOSS` or :data:`DRAW`. Ordered by position rather than unordered because an
always-A voter is a position pattern, which an unordered view erases; and because each ordered pair
has its own history, the crowd's own position bias is part of the null and never counts against a
voter. The price is half as much history per key.

- Pairwise votes: ``a`` is a :data:`WIN`, ``b`` a :data:`LOSS`; ``tie`` and ``both_bad`` are merged
  into :data:`DRAW`. Why merged: whether someone clicks "tie" or "both bad" for two answers of
  similar quality is mostly that person's habit, not a property of the pair, so keeping them apart
  would flag honest voters for their style.
- K-wise votes (``best_of_k`` and ``ranking``, K > 2): every vote *in the history* contributes all
  of its K(K-1)/2 implied comparisons, one per pair of positions ``p < q``; the *tested* vote
  contributes one comparison, between a pair of positions drawn uniformly at random (``rng``), so
  that each vote gives exactly one p-value (the comparisons of one ranking are strongly dependent).
  Because the pair is drawn without looking at the verdict, the tested comparison and each history
  comparison of that pair have the same distribution under the null. Outcomes: for a ranking, the
  better group wins and one group is a :data:`DRAW`; for best-of-K, the best wins, and a pair where
  neither is the best is a :data:`DRAW` ("neither was the best").
- Histories are kept apart per vote kind and K (the service keys them ``(kind, k, first, second)``):
  "neither was the best of 4" and "tie in a pairwise vote" are different events.

**Per-vote p-value** (:func:`vote_pvalue`). The paper's Eq. 10 is a conformal p-value,
``p = (1 + #{h in H : h at least as extreme as the vote}) / (|H| + 1)`` over the pair's history
``H``; the ``1 +`` counts the vote itself, which is the add-one smoothing that keeps an outcome never
seen before at ``p >= 1 / (|H| + 1)``, never 0. What "extreme" means is ours to choose: any ordering
of outcomes that depends on ``H`` and the vote only through their union (the "bag") and on the voter's
*earlier* votes keeps the p-value valid. We order outcomes by the likelihood ratio of a *content-blind*
voter against the bag's frequencies ``pi``: a voter whose outcome does not depend on which models it
sees, with the habits it showed in its earlier comparisons (``r_W, r_L, r_D``: its wins, losses and
draws for the first position so far). By default (``draw_habit=False``) that voter draws as often as
the crowd does on this pair and splits its decisive votes between the positions as it did before,
``w = (r_W + 1) / (r_W + r_L + 2)`` (1/2 for a first vote):

    ratio(WIN) = w (1 - pi_D) / pi_W,   ratio(LOSS) = (1 - w) (1 - pi_D) / pi_L,   ratio(DRAW) = 1.

A larger ratio is more extreme. So an upset (the pair's underdog winning) is extreme, more so the
clearer the favourite; a vote for the position the voter keeps choosing is extreme once the habit is
established (always-A voters); draws are neutral, so an honest voter who ties much more or much less
than average is not flagged for that alone, while a voter who draws on pairs with a clear favourite
still is (draws rank between the favourite's win and the upset). For a first vote the ordering is
"favourite wins < draw < upset", one reading of the paper's ``h >= H``. With ``draw_habit=True`` the
voter's own draw share counts as well, ``q(o) = (r_o + 1) / (r_W + r_L + r_D + 3)`` and
``ratio(o) = q(o) / pi_o`` (for a first vote: the rarer the outcome, the more extreme): more power
against voters who click at random (they draw half the time), at the cost of flagging honest voters
whose tie rate is far from the crowd's — benchmarks/anomaly_simulation.py measures both. With
``model_habit`` (the default of :func:`voter_pvalues`) the voter's position odds are multiplied by its
earlier lean towards the two contenders (:func:`model_lean`), so that a voter who picks one model
wherever it stands (the targeted attacks of Huang et al. 2025 and Min et al. 2025, which have no position
pattern) makes its favourite's wins extreme; benchmarks/manipulation_drill.py measures it. Equal
ratios are broken by an independent uniform draw (the smoothed conformal p-value, Vovk et al.
2005): with ``rng`` the p-value is exactly Uniform(0, 1) when the vote is exchangeable with the
history; without ``rng`` ties count as extreme, which is valid but conservative. The randomization
matters: the commonest outcome otherwise always gets ``p = 1`` (``-2 log p = 0``), so honest voters
sit far below the chi-square null that Fisher's method assumes and the test loses most of its power.

**Combination and checkpoints** (:func:`voter_anomaly_test`). Fisher's method on a voter's first
``j`` p-values in time order, ``M_j = -2 sum_{i <= j} log p_i``, which is chi-square with ``2 j``
degrees of freedom under the null, at each checkpoint ``j`` (default 5, 10, 20, 50, 100) that the
voter has reached. The voter is flagged at the first checkpoint where ``P(chi2_{2j} >= M_j) <=
alpha / len(checkpoints)``: a Bonferroni correction over *all* configured checkpoints, as the paper's
``chi2_{2j, 1 - alpha/5}`` with five checkpoints, so an honest voter is flagged with probability at
most ``alpha`` however many votes it has. The paper draws its checkpoints at random to make the test
harder to game; ours are fixed and configurable. Only a voter's first ``max(checkpoints)`` judged
votes are ever tested (as in the paper): a voter who turns bad later is not caught by this test.

**Identities, the per-model test, the drift scan.** What the service tests is an *identity*: a voter
(cookie or user), or every voter behind one address merged in time order (a fresh cookie every few votes
is one identity again); the p-values above do not care which. :func:`identity_anomaly_test` runs the
all-votes test and :func:`model_anomaly_test`: per model, the votes on battles that show it, each scored
with a fixed-direction conformal p-value (:func:`directional_pvalues`: did this model do better than the
crowd on this ordered pair?) and combined with Stouffer's method, for and against the model, at checkpoints
up to 5,000 judged votes (Bonferroni over checkpoints, models and the two directions). It finds a voter
that votes for one model (or against its rivals) however many honest-looking votes it casts around them,
which the all-votes test dilutes past detection. An honest identity is flagged by the two tests with
probability at most ``alpha + model_alpha``. What no per-identity test can see is an attacker spread over
many addresses with a few votes each; :func:`model_drift_test` and :func:`model_drift_scan` look at the
model instead (its results in a recent window against the same opponents, compared with its earlier
ones), which finds a burst but cannot tell an attack from a genuine change of the model.

Caveat: the p-values of one voter share the pair histories, so given the data they are not exactly
independent (conformal p-values on a common calibration set are positively dependent, which makes
Fisher's method slightly liberal). With histories of a few dozen votes per pair and votes spread
over many pairs the effect is small; ``tests/arena/test_anomaly_core.py`` checks the false-flag rate
by simulation, and the service skips votes whose pair history is shorter than ``min_pair_history``.
"""
from __future__ import annotations

from bisect import bisect_left
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from scipy import stats

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_CHECKPOINTS",
    "DEFAULT_DRIFT_ALPHA",
    "DEFAULT_DRIFT_WINDOWS",
    "DEFAULT_MIN_MODEL_VOTES",
    "DEFAULT_MODEL_ALPHA",
    "DEFAULT_MODEL_CHECKPOINTS",
    "DRAW",
    "LOSS",
    "N_OUTCOMES",
    "WIN",
    "AnomalyResult",
    "DriftHold",
    "DriftResult",
    "ScoredVotes",
    "directional_pvalues",
    "fisher_combine",
    "identity_anomaly_test",
    "kwise_comparison",
    "kwise_comparisons",
    "model_anomaly_test",
    "model_drift_scan",
    "model_drift_test",
    "model_lean",
    "pairwise_comparison",
    "reached_checkpoint",
    "stouffer_combine",
    "validate_checkpoints",
    "vote_pvalue",
    "voter_anomaly_test",
    "voter_pvalues",
    "voter_scored_votes",
]

# Outcomes from the view of the model in the first (lower) position of the compared pair.
WIN, LOSS, DRAW = 0, 1, 2
N_OUTCOMES = 3
DEFAULT_CHECKPOINTS: tuple[int, ...] = (5, 10, 20, 50, 100)
DEFAULT_ALPHA = 0.01
# The per-model test (:func:`model_anomaly_test`): checkpoints in judged votes of the identity, far beyond
# the all-votes test's 100, because a camouflaged attacker's votes on its target are a tenth of its votes.
DEFAULT_MODEL_CHECKPOINTS: tuple[int, ...] = (20, 50, 100, 200, 500, 1000, 2000, 5000)
DEFAULT_MODEL_ALPHA = 0.01
DEFAULT_MIN_MODEL_VOTES = 10

# One comparison: (contender in the first position, contender in the second, outcome code).
Comparison = tuple[int, int, int]


# ------------------------------------------------------------------------------ comparisons
def pairwise_comparison(contender_a: int, contender_b: int, outcome: str) -> Comparison:
    """The comparison a pairwise vote makes.

    Parameters
    ----------
    contender_a, contender_b : int
        Ids of the contenders in positions A and B.
    outcome : {"a", "b", "tie", "both_bad"}
        The vote.

    Returns
    -------
    tuple of int
        ``(contender_a, contender_b, code)``: :data:`WIN` for ``a``, :data:`LOSS` for ``b``,
        :data:`DRAW` for ``tie`` and ``both_bad``.

    Raises
    ------
    ValueError
        If the outcome is unknown.
    """
    codes = {"a": WIN, "b": LOSS, "tie": DRAW, "both_bad": DRAW}
    if outcome not in codes:
        raise ValueError(f"unknown pairwise outcome {outcome!r}")
    return (contender_a, contender_b, codes[outcome])


def _group_of(k: int, *, best_position: int | None, ranking: Sequence[Sequence[int]] | None) -> list[int]:
    """Rank group of each position (0 = best). Best-of-K: the best is group 0, every other position group 1."""
    if (best_position is None) == (ranking is None):
        raise ValueError("give exactly one of best_position and ranking")
    if best_position is not None:
        if not 0 <= best_position < k:
            raise ValueError(f"best_position {best_position} outside 0..{k - 1}")
        return [0 if p == best_position else 1 for p in range(k)]
    group = [-1] * k
    for g, members in enumerate(ranking or ()):
        for p in members:
            if not 0 <= p < k or group[p] != -1:
                raise ValueError(f"ranking must name each position 0..{k - 1} exactly once")
            group[p] = g
    if -1 in group:
        raise ValueError(f"ranking must name each position 0..{k - 1} exactly once")
    return group


def _compare(contenders: Sequence[int], group: Sequence[int], p: int, q: int) -> Comparison:
    """Positions ``p < q``: same group (or neither is the best of K) is a draw, else the better group wins."""
    code = DRAW if group[p] == group[q] else WIN if group[p] < group[q] else LOSS
    return (contenders[p], contenders[q], code)


def kwise_comparisons(contenders: Sequence[int], *, best_position: int | None = None,
                      ranking: Sequence[Sequence[int]] | None = None) -> list[Comparison]:
    """All ``K (K - 1) / 2`` comparisons implied by a K-wise vote: what it adds to the histories.

    Parameters
    ----------
    contenders : sequence of int
        Contender id in each position 0..K-1.
    best_position : int, optional
        Best-of-K vote: the chosen position. The best beats every other; two others are a :data:`DRAW`.
    ranking : sequence of sequences of int, optional
        Ranking vote: groups of positions, best first; positions in one group are a :data:`DRAW`.

    Returns
    -------
    list of tuple of int
        ``(contender at p, contender at q, code)`` for every pair of positions ``p < q``.
    """
    k = len(contenders)
    group = _group_of(k, best_position=best_position, ranking=ranking)
    return [_compare(contenders, group, p, q) for p in range(k) for q in range(p + 1, k)]


def kwise_comparison(contenders: Sequence[int], *, rng: np.random.Generator, best_position: int | None = None,
                     ranking: Sequence[Sequence[int]] | None = None) -> Comparison:
    """The one comparison a K-wise vote is tested on: a uniformly drawn pair of positions ``p < q``.

    The draw does not look at the verdict, so under the null the comparison has the distribution of
    each comparison of that ordered pair in the history (see the module docstring).

    Parameters
    ----------
    contenders, best_position, ranking
        As in :func:`kwise_comparisons`.
    rng : numpy.random.Generator
        Draws the pair.

    Returns
    -------
    tuple of int
        ``(contender at p, contender at q, code)``.
    """
    k = len(contenders)
    group = _group_of(k, best_position=best_position, ranking=ranking)
    p, q = sorted(int(x) for x in rng.choice(k, size=2, replace=False))
    return _compare(contenders, group, p, q)


# ------------------------------------------------------------------------------ p-values
def _ratios(bag: np.ndarray, habit: Sequence[int], *, draw_habit: bool,
            lean: tuple[int, int] = (1, 1)) -> list[tuple[int, int] | None]:
    """Each outcome's likelihood ratio as an exact fraction (numerator, denominator); None if not in the bag.

    Neutral draws: the voter's odds of a first-position win are ``N / D`` with ``N = (r_W + 1) l_1`` and
    ``D = (r_L + 1) l_2`` (``lean = (l_1, l_2)``, the model lean, ``(1, 1)`` when unused), ``w = N / (N + D)``;
    with ``pi = bag / bag.sum()``, ``ratio(WIN) = w (1 - pi_D) / pi_W = N (b_W + b_L) / ((N + D) b_W)``,
    likewise LOSS, and ``ratio(DRAW) = 1``. With the draw habit, ``q(o) = (r_o + 1) / (r_W + r_L + r_D + 3)``
    for a draw and the decisive share split in the odds ``N : D``; the common factor cancels:
    ``ratio(DRAW) = (r_D + 1) / b_D``, ``ratio(WIN) = (r_W + r_L + 2) N / ((N + D) b_W)``, likewise LOSS
    (without a lean, ``(r_o + 1) / b_o``). Integers throughout, so that equal ratios compare equal and
    are broken at random, never by rounding.
    """
    b = [int(x) for x in bag]
    n_odds, d_odds = (habit[WIN] + 1) * lean[0], (habit[LOSS] + 1) * lean[1]
    split = n_odds + d_odds
    if draw_habit:
        decisive_habit = habit[WIN] + habit[LOSS] + 2
        return [
            (decisive_habit * n_odds, split * b[WIN]) if b[WIN] else None,
            (decisive_habit * d_odds, split * b[LOSS]) if b[LOSS] else None,
            (habit[DRAW] + 1, b[DRAW]) if b[DRAW] else None,
        ]
    decisive = b[WIN] + b[LOSS]
    return [
        (n_odds * decisive, split * b[WIN]) if b[WIN] else None,
        (d_odds * decisive, split * b[LOSS]) if b[LOSS] else None,
        (1, 1) if b[DRAW] else None,
    ]


def vote_pvalue(history_counts: np.ndarray, outcome: int, *, habit: Sequence[int] = (0, 0, 0),
                draw_habit: bool = False, rng: np.random.Generator | None = None,
                lean: tuple[int, int] = (1, 1), u: float | None = None) -> float:
    """Conformal p-value of one vote's outcome against the pair's history of outcomes.

    The bag is the history plus this vote; each outcome's extremeness is its likelihood ratio (module
    docstring). With ``S`` the number of bag members strictly more extreme than the vote's outcome,
    ``T`` those exactly as extreme (the vote itself included) and ``n`` the history's size:

    - deterministic (``rng=None``): ``p = (S + T) / (n + 1)``, super-uniform;
    - randomized: ``p = (S + U T) / (n + 1)`` with ``U ~ Uniform(0, 1]``, exactly uniform.

    Both are valid when the vote is exchangeable with the history (the null: on this pair this voter
    behaves like everyone else). The smallest possible value is ``1 / (n + 1)`` (randomized: above 0).

    Parameters
    ----------
    history_counts : ndarray, shape (3,)
        Counts of :data:`WIN`, :data:`LOSS`, :data:`DRAW` in the pair's history, this vote excluded.
    outcome : int
        The vote's outcome code.
    habit : sequence of int
        The voter's earlier outcomes ``(r_W, r_L, r_D)`` over its previous comparisons; zeros for a
        first vote.
    draw_habit : bool
        False (default): draws are neutral, ``ratio(DRAW) = 1``. True: the voter's own draw share counts
        too (more power against random voters, but honest voters who tie much more or less than the
        crowd get flagged more often; see benchmarks/anomaly_simulation.py).
    rng : numpy.random.Generator, optional
        Breaks ties of extremeness at random; ``None`` counts them as extreme.
    lean : tuple of int
        The voter's earlier lean towards the contender in the first position against the one in the
        second, as integer odds ``(l_1, l_2)`` that multiply its position odds (:func:`model_lean`);
        ``(1, 1)``, no lean, by default.
    u : float, optional
        The tie-breaking uniform in ``(0, 1]``, when the caller has drawn it (:func:`voter_scored_votes` shares
        it with :func:`directional_pvalues`); overrides ``rng``.

    Returns
    -------
    float
        The p-value, in ``(0, 1]``.

    Examples
    --------
    History 8 wins, 1 loss, 1 draw, first vote, neutral draws (``w = 1/2``): the bag after a loss is
    (8, 2, 1), with ratios 10/16, 10/4 and 1; the loss is the most extreme, so ``p = 2 / 11``. A draw
    has bag (8, 1, 2) and ratios 9/16, 9/2, 1: only the loss is more extreme, ``p = (1 + 2) / 11``. A
    win is the least extreme outcome: ``p = 11 / 11 = 1``.
    """
    h = np.asarray(history_counts, dtype=np.int64)
    if h.shape != (N_OUTCOMES,) or (h < 0).any():
        raise ValueError(f"history_counts must be {N_OUTCOMES} non-negative counts")
    if not 0 <= outcome < N_OUTCOMES:
        raise ValueError(f"outcome must be in 0..{N_OUTCOMES - 1}")
    if len(habit) != N_OUTCOMES or min(habit) < 0:
        raise ValueError(f"habit must be {N_OUTCOMES} non-negative counts")
    bag = h.copy()
    bag[outcome] += 1
    if len(lean) != 2 or min(lean) < 1:
        raise ValueError("lean must be two positive integers")
    ratios = _ratios(bag, habit, draw_habit=draw_habit, lean=(int(lean[0]), int(lean[1])))
    num, den = ratios[outcome]  # type: ignore[misc]  # the vote's own outcome is in the bag
    more = same = 0
    for code, ratio in enumerate(ratios):
        if ratio is None:
            continue
        diff = ratio[0] * den - num * ratio[1]   # sign of ratio - ratio(outcome), exact
        if diff > 0:
            more += int(bag[code])
        elif diff == 0:
            same += int(bag[code])
    if u is None:
        u = 1.0 if rng is None else 1.0 - rng.random()   # 1 - [0, 1) is (0, 1]: never p = 0
    return (more + u * same) / int(bag.sum())


def directional_pvalues(history_counts: np.ndarray, outcome: int, *, u: float | None) -> tuple[float, float]:
    """Conformal p-values of "the first contender did better than the crowd" and of "the second did".

    The same bag as :func:`vote_pvalue`, with a fixed order of extremeness instead of the likelihood ratio:
    ``WIN > DRAW > LOSS`` for the first (a win of the first position's contender is the most extreme outcome)
    and the reverse for the second. Both orders depend on nothing, so both p-values are valid.

    Parameters
    ----------
    history_counts : ndarray, shape (3,)
        The pair's history, this vote excluded.
    outcome : int
        The vote's outcome code.
    u : float or None
        The tie-breaking uniform in ``(0, 1]``: the first p-value uses ``u`` and the second ``1 - u``, so
        that they add up to one (exactly uniform each; the second is then never 0 because ``u`` is drawn
        below 1 except with probability 2^-53). ``None``: ties count as extreme in both (super-uniform each,
        conservative).

    Returns
    -------
    p_first, p_second : float
        In ``(0, 1]`` (the second may be 0 with probability 2^-53; callers clip).

    Examples
    --------
    History 8 wins, 1 loss, 1 draw, a win, ``u = 1/2``: the bag is (9, 1, 1); ``p_first = 4.5 / 11`` and
    ``p_second = (1 + 1 + 4.5) / 11``.
    """
    bag = np.asarray(history_counts, dtype=np.int64).copy()
    bag[outcome] += 1
    n = int(bag.sum())
    w, lo, d = (int(x) for x in bag)
    above_first = {WIN: 0, DRAW: w, LOSS: w + d}[outcome]      # outcomes more extreme for "first did better"
    above_second = {LOSS: 0, DRAW: lo, WIN: lo + d}[outcome]
    same = int(bag[outcome])
    u_first, u_second = (1.0, 1.0) if u is None else (u, 1.0 - u)
    return (above_first + u_first * same) / n, (above_second + u_second * same) / n


def model_lean(record: Mapping[Hashable, tuple[int, int]], first: Hashable, second: Hashable) -> tuple[int, int]:
    """A voter's earlier lean towards ``first`` against ``second``, as integer odds.

    From the voter's earlier decisive comparisons (``record``: contender -> (wins, losses)), each contender's
    smoothed win share ``f_c = (wins_c + 1) / (wins_c + losses_c + 2)`` (1/2 when unseen) and the odds
    ``f_1 (1 - f_2) / (f_2 (1 - f_1))`` of a voter who favours contenders as it did before (a Bradley-Terry
    combination of its own shares), reduced to ``((w_1 + 1)(l_2 + 1), (l_1 + 1)(w_2 + 1))``.

    Why: a voter who picks one model whenever it appears (the targeted attacks of Huang et al. 2025 and
    Min et al. 2025) has no position habit; its pattern is a *model* habit. The lean looks only at earlier
    votes, so the p-values stay valid.
    """
    w1, l1 = record.get(first, (0, 0))
    w2, l2 = record.get(second, (0, 0))
    return (w1 + 1) * (l2 + 1), (l1 + 1) * (w2 + 1)


@dataclass(frozen=True)
class ScoredVotes:
    """One identity's judged votes in time order: p-values and the two contenders each compared.

    ``pvalues`` are :func:`vote_pvalue`'s (for the all-votes test); ``p_first`` and ``p_second`` the
    :func:`directional_pvalues` of the same votes, with the same tie-breaking uniform (for the per-model
    test). ``first[i]`` and ``second[i]`` are the last two items of the ``i``-th judged comparison's key
    (the contenders in the first and second position in the service's ``(kind, k, first, second)``).
    """

    pvalues: np.ndarray
    first: tuple[Hashable, ...]
    second: tuple[Hashable, ...]
    p_first: np.ndarray
    p_second: np.ndarray


def voter_scored_votes(
    tested: Sequence[tuple[Hashable, int]], history: Mapping[Hashable, np.ndarray],
    own: Mapping[Hashable, np.ndarray], *, min_pair_history: int, rng: np.random.Generator | None,
    draw_habit: bool = False, limit: int | None = None, model_habit: bool = True,
) -> ScoredVotes:
    """:func:`voter_pvalues` with the contenders of each judged comparison (what :func:`model_anomaly_test` needs).

    Parameters and p-values as in :func:`voter_pvalues`; each key's last two items must be the contenders
    in the first and second position.
    """
    empty = np.zeros(N_OUTCOMES, dtype=np.int64)
    out: list[float] = []
    firsts: list[Hashable] = []
    seconds: list[Hashable] = []
    directional: list[tuple[float, float]] = []
    habit = [0] * N_OUTCOMES
    record: dict[Hashable, tuple[int, int]] = {}   # contender -> (wins, losses) in this voter's decisive votes
    for key, outcome in tested:
        if limit is not None and len(out) >= limit:
            break
        counts = history.get(key, empty) - own.get(key, empty)
        if (counts < 0).any():
            raise ValueError(f"own counts exceed the history for {key!r}: was the voter left out twice?")
        # Keys that are not sequences (possible with model_habit=False) name no contenders.
        first, second = (key[-2], key[-1]) if isinstance(key, Sequence) else (None, None)
        if counts.sum() >= min_pair_history:
            lean = model_lean(record, first, second) if model_habit else (1, 1)
            u = None if rng is None else 1.0 - rng.random()   # one draw per vote, shared by both p-values
            out.append(vote_pvalue(counts, outcome, habit=habit, draw_habit=draw_habit, lean=lean,
                                   u=1.0 if u is None else u))
            directional.append(directional_pvalues(counts, outcome, u=u))
            firsts.append(first)
            seconds.append(second)
        habit[outcome] += 1   # after the test: the score of a vote looks only at earlier votes
        if model_habit and outcome != DRAW:
            winner, loser = (first, second) if outcome == WIN else (second, first)
            w, lo = record.get(winner, (0, 0))
            record[winner] = (w + 1, lo)
            w, lo = record.get(loser, (0, 0))
            record[loser] = (w, lo + 1)
    pair = np.asarray(directional, dtype=float).reshape(-1, 2)
    return ScoredVotes(np.asarray(out, dtype=float), tuple(firsts), tuple(seconds), pair[:, 0], pair[:, 1])


def voter_pvalues(
    tested: Sequence[tuple[Hashable, int]], history: Mapping[Hashable, np.ndarray],
    own: Mapping[Hashable, np.ndarray], *, min_pair_history: int, rng: np.random.Generator | None,
    draw_habit: bool = False, limit: int | None = None, model_habit: bool = True,
) -> np.ndarray:
    """One voter's p-values in time order, each against the pair's history without the voter's own votes.

    Parameters
    ----------
    tested : sequence of (key, outcome)
        The voter's tested comparisons in time order; ``key`` names the ordered pair's history (the
        service uses ``(kind, k, first contender, second contender)``).
    history : mapping of key to ndarray, shape (3,)
        Outcome counts of every voter's votes per key.
    own : mapping of key to ndarray, shape (3,)
        What this voter's votes added to ``history`` (for K-wise votes: every implied comparison),
        subtracted so that a voter is never compared with itself (leave-one-voter-out).
    min_pair_history : int
        Comparisons whose remaining history is shorter are skipped (too little to judge against);
        they still count towards the voter's habit.
    rng : numpy.random.Generator or None
        Passed to :func:`vote_pvalue`.
    draw_habit : bool
        Passed to :func:`vote_pvalue`.
    limit : int, optional
        Stop after this many p-values (the last checkpoint: later votes are never tested).
    model_habit : bool
        True (default): the voter's earlier lean towards each contender counts as well as its position
        habit (:func:`model_lean`); each key's last two items must then be the contenders in the first
        and second position (the service's ``(kind, k, first, second)``). False: position habit only.

    Returns
    -------
    ndarray, shape (m,)
        P-values of the comparisons that were not skipped, in the order given.
    """
    return voter_scored_votes(tested, history, own, min_pair_history=min_pair_history, rng=rng,
                              draw_habit=draw_habit, limit=limit, model_habit=model_habit).pvalues


# ------------------------------------------------------------------------------ combination
def fisher_combine(pvalues: np.ndarray) -> tuple[float, float]:
    """Fisher's method: ``M = -2 sum log p_i`` and its chi-square (``2 n`` d.o.f.) upper tail.

    Parameters
    ----------
    pvalues : ndarray, shape (n,)
        Independent p-values in ``(0, 1]``, ``n >= 1``.

    Returns
    -------
    statistic, p_combined : float
        Agrees with ``scipy.stats.combine_pvalues(pvalues, method="fisher")``.
    """
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1 or p.size == 0 or not ((p > 0) & (p <= 1)).all():
        raise ValueError("pvalues must be a non-empty 1-d array of values in (0, 1]")
    statistic = float(-2.0 * np.log(p).sum())
    return statistic, float(stats.chi2.sf(statistic, 2 * p.size))


def validate_checkpoints(checkpoints: Sequence[int]) -> tuple[int, ...]:
    """Checkpoints as a strictly increasing tuple of positive ints; raise ValueError naming the problem."""
    values = tuple(checkpoints)
    if not values:
        raise ValueError("give at least one checkpoint")
    if any(isinstance(c, bool) or not isinstance(c, int | np.integer) or c < 1 for c in values):
        raise ValueError(f"checkpoints must be positive integers, got {values}")
    if any(b <= a for a, b in pairwise(values)):
        raise ValueError(f"checkpoints must be strictly increasing, got {values}")
    return tuple(int(c) for c in values)


@dataclass(frozen=True)
class AnomalyResult:
    """Outcome of :func:`voter_anomaly_test`.

    ``checkpoint`` is the first checkpoint that rejected (None if none did). ``statistic`` and
    ``p_combined`` are Fisher's ``M_j`` and its chi-square tail at the deciding checkpoint: the one that
    rejected, or else the reached checkpoint with the smallest combined p-value; NaN when the voter has
    fewer p-values than the smallest checkpoint. ``level`` is the per-checkpoint level
    ``alpha / len(checkpoints)``; ``n_pvalues`` how many p-values the voter had. ``model`` is set when
    :func:`model_anomaly_test` rejected: the votes involving that model were the anomalous ones.
    """

    flagged: bool
    checkpoint: int | None
    statistic: float
    p_combined: float
    level: float
    n_pvalues: int
    model: Hashable | None = None   # the per-model test's model when it rejected (None: the all-votes test)


def voter_anomaly_test(pvalues: np.ndarray, *, checkpoints: Sequence[int] = DEFAULT_CHECKPOINTS,
                       alpha: float = DEFAULT_ALPHA, decided_through: int = 0) -> AnomalyResult:
    """Fisher's combination of a voter's first ``j`` p-values at each checkpoint ``j``, Bonferroni-corrected.

    Parameters
    ----------
    pvalues : ndarray, shape (n,)
        The voter's per-vote p-values in time order (from :func:`voter_pvalues`).
    checkpoints : sequence of int
        Strictly increasing vote counts at which to test; those beyond ``n`` are not reached.
    alpha : float
        Family-wise level per voter, in (0, 1): each checkpoint is tested at ``alpha / len(checkpoints)``.
    decided_through : int
        Checkpoints up to this vote count were tested by an earlier run and are not tested again. A
        service that runs the test periodically passes what it stored: each checkpoint is then decided
        exactly once in a voter's life, so the Bonferroni bound (at most ``alpha`` for an honest voter)
        holds however many runs there are. Re-testing a checkpoint as the history grows would be a fresh
        look each time, and the false-flag rate would creep past ``alpha``.

    Returns
    -------
    AnomalyResult
        ``flagged`` is True when some reached checkpoint rejects; see the class for the other fields.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    marks = validate_checkpoints(checkpoints)
    p = np.asarray(pvalues, dtype=float)
    level = alpha / len(marks)
    best: tuple[float, float] = (float("nan"), float("nan"))
    for j in marks:
        if j > p.size:
            break
        if j <= decided_through:
            continue
        statistic, p_combined = fisher_combine(p[:j])
        if p_combined <= level:
            return AnomalyResult(True, j, statistic, p_combined, level, int(p.size))
        if not p_combined >= best[1]:     # also true while best is still NaN
            best = (statistic, p_combined)
    return AnomalyResult(False, None, best[0], best[1], level, int(p.size))


def stouffer_combine(pvalues: np.ndarray) -> tuple[float, float]:
    """Stouffer's method: ``Z = sum_i Phi^-1(1 - p_i) / sqrt(n)`` and its standard normal upper tail.

    Parameters
    ----------
    pvalues : ndarray, shape (n,)
        Independent p-values in ``[0, 1]``, ``n >= 1``; clipped to ``[1e-300, 1 - 1e-16]`` so that an
        exact 0 or 1 gives a large finite score.

    Returns
    -------
    statistic, p_combined : float
        Agrees with ``scipy.stats.combine_pvalues(pvalues, method="stouffer")`` inside the clip.
    """
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1 or p.size == 0 or not ((p >= 0) & (p <= 1)).all():
        raise ValueError("pvalues must be a non-empty 1-d array of values in [0, 1]")
    z = float(stats.norm.isf(np.clip(p, 1e-300, 1 - 1e-16)).sum() / np.sqrt(p.size))
    return z, float(stats.norm.sf(z))


def model_anomaly_test(scored: ScoredVotes, *, checkpoints: Sequence[int] = DEFAULT_MODEL_CHECKPOINTS,
                       alpha: float = DEFAULT_MODEL_ALPHA, min_model_votes: int = DEFAULT_MIN_MODEL_VOTES,
                       decided_through: int = 0) -> AnomalyResult:
    """Does an identity's verdict on one model, in the votes that show it, differ from the crowd's? Per model.

    Why: an attacker that votes for its target (or against the target's rivals) and casts honest-looking
    cover votes on every other battle dilutes its pattern in the all-votes test (:func:`voter_anomaly_test`)
    ninefold, and reaches that test's last checkpoint with a dozen votes on its target. Its votes on
    battles that show the target all go one way, whatever its cover votes; so they are tested apart.

    At each checkpoint ``j`` (counted in the identity's judged votes, as in :func:`voter_anomaly_test`) and
    for each model ``X`` with at least ``min_model_votes`` of the first ``j`` judged votes involving it:
    each such vote's p-value that ``X`` did better than the crowd on that pair (:func:`directional_pvalues`:
    ``p_first`` when ``X`` was in the first position, ``p_second`` when in the second), combined with
    Stouffer's method; for ``X`` and against ``X`` (the same votes' other p-values), each at level
    ``alpha / (2 len(checkpoints) m_j)``, ``m_j`` the number of such models at ``j``.

    Why Stouffer rather than Fisher: a vote for a model that wins most of its battles anyway is only mildly
    surprising (its p-value is ``U pi_win``, say ``U * 0.6``), never tiny; Fisher's method rewards tiny
    p-values, Stouffer's the steady drift of many moderate ones, and needs about half as many such votes.

    Validity: each p-value is uniform given the identity's earlier votes (randomized; super-uniform without
    an ``rng``), and whether a vote involves ``X`` is fixed by the battle shown, before the verdict; so each
    model's combined p-value is valid (with the caveat about shared histories of the module docstring).
    ``m_j`` depends only on which battles were shown, so the Bonferroni sum over checkpoints, models and the
    two directions is ``alpha``: an honest identity is flagged by this test with probability at most ``alpha``.

    Parameters
    ----------
    scored : ScoredVotes
        The identity's judged votes (:func:`voter_scored_votes`).
    checkpoints : sequence of int
        Strictly increasing judged-vote counts.
    alpha : float
        Family-wise level of this test per identity, in (0, 1).
    min_model_votes : int
        Fewest votes involving a model for it to be tested at a checkpoint (at least 1).
    decided_through : int
        As in :func:`voter_anomaly_test`: checkpoints up to this count were decided by an earlier run.

    Returns
    -------
    AnomalyResult
        ``model`` names the model whose votes rejected (``statistic`` is Stouffer's ``Z``, positive for,
        negative against the model); at the first rejecting checkpoint the smallest combined p-value there,
        else the smallest seen; ``level`` the level it was tested at (``nan`` when nothing was tested).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if min_model_votes < 1:
        raise ValueError(f"min_model_votes must be at least 1, got {min_model_votes}")
    marks = validate_checkpoints(checkpoints)
    n = int(np.asarray(scored.pvalues).size)
    if not len(scored.first) == len(scored.second) == scored.p_first.size == scored.p_second.size == n:
        raise ValueError("scored votes: one pair of contenders and of directional p-values per p-value")
    # model -> (indices of its judged votes in time order, their p-values "it did better", "it did worse")
    involving: dict[Hashable, tuple[list[int], list[float], list[float]]] = {}
    for i, (first, second) in enumerate(zip(scored.first, scored.second, strict=True)):
        p_first, p_second = float(scored.p_first[i]), float(scored.p_second[i])
        for model, p_for, p_against in ((first, p_first, p_second), (second, p_second, p_first)):
            idx, fors, againsts = involving.setdefault(model, ([], [], []))
            idx.append(i)
            fors.append(p_for)
            againsts.append(p_against)
    best: tuple[float, float, float, Hashable | None] = (float("nan"), float("nan"), float("nan"), None)
    for j in marks:
        if j > n:
            break
        if j <= decided_through:
            continue
        cut = {model: bisect_left(idx, j) for model, (idx, _, _) in involving.items()}
        tested = [model for model, c in cut.items() if c >= min_model_votes]
        if not tested:
            continue
        level = alpha / (2 * len(marks) * len(tested))
        found: list[tuple[float, float, Hashable]] = []
        for model in tested:
            _, fors, againsts = involving[model]
            z, p_for = stouffer_combine(np.asarray(fors[:cut[model]]))
            found.append((p_for, z, model))
            # Randomized, the p-values against are 1 - those for: the lower tail of the same Z. Computed
            # apart all the same, because without an rng both are super-uniform and that identity fails.
            z_against, p_against = stouffer_combine(np.asarray(againsts[:cut[model]]))
            found.append((p_against, -z_against, model))
        p_combined, z, model = min(found, key=lambda item: item[0])
        if p_combined <= level:
            return AnomalyResult(True, j, z, p_combined, level, n, model=model)
        if not p_combined >= best[1]:
            best = (z, p_combined, level, model)
    return AnomalyResult(False, None, best[0], best[1], best[2], n, model=best[3])


def identity_anomaly_test(
    scored: ScoredVotes, *, checkpoints: Sequence[int] = DEFAULT_CHECKPOINTS, alpha: float = DEFAULT_ALPHA,
    model_checkpoints: Sequence[int] = DEFAULT_MODEL_CHECKPOINTS, model_alpha: float = DEFAULT_MODEL_ALPHA,
    min_model_votes: int = DEFAULT_MIN_MODEL_VOTES, decided_through: int = 0,
) -> AnomalyResult:
    """Both tests of one identity (a voter, or every voter behind one address): all its votes, and per model.

    Runs :func:`voter_anomaly_test` (``checkpoints``, ``alpha``) and, unless ``model_checkpoints`` is
    empty, :func:`model_anomaly_test` (``model_checkpoints``, ``model_alpha``), both skipping checkpoints up
    to ``decided_through``. An honest identity is flagged with probability at most ``alpha + model_alpha``
    (a union bound; Bonferroni over the checkpoints and models makes it much less in practice).

    Returns
    -------
    AnomalyResult
        The rejecting test's result (the earlier checkpoint when both reject; the all-votes test on a tie),
        else the all-votes test's.
    """
    overall = voter_anomaly_test(scored.pvalues, checkpoints=checkpoints, alpha=alpha,
                                 decided_through=decided_through)
    if not model_checkpoints:
        return overall
    per_model = model_anomaly_test(scored, checkpoints=model_checkpoints, alpha=model_alpha,
                                   min_model_votes=min_model_votes, decided_through=decided_through)
    if per_model.flagged and (not overall.flagged or per_model.checkpoint < overall.checkpoint):  # type: ignore[operator]
        return per_model
    return overall


def reached_checkpoint(n_pvalues: int, *checkpoint_lists: Sequence[int]) -> int:
    """The largest checkpoint of any list that ``n_pvalues`` judged votes reach (0 if none): what a run decides."""
    return max((j for marks in checkpoint_lists for j in marks if j <= n_pvalues), default=0)



# ------------------------------------------------------------------------------ per-model drift


DEFAULT_DRIFT_ALPHA = 0.01
# Window lengths, in days, that the drift scan looks back over on each day: a burst shows in one day, a
# patient attack of a few hundred votes a day only over several.
DEFAULT_DRIFT_WINDOWS: tuple[int, ...] = (1, 2, 4, 8)


@dataclass(frozen=True)
class DriftResult:
    """Outcome of :func:`model_drift_test`, one entry per model (index into the count arrays).

    ``z``: the standardized change of each model's score (win +1, draw 0, loss -1) in the window against
    what its earlier votes on the same ordered pairs predict, positive when it did better; ``p``: two-sided
    p-values (1 for a model with nothing to compare); ``n_window``: the window's votes involving the model
    on pairs that have earlier votes; ``held``: ``p <= level``, with ``level = alpha / m`` over the ``m``
    models that could be tested.
    """

    z: np.ndarray
    p: np.ndarray
    n_window: np.ndarray
    held: np.ndarray
    level: float


def model_drift_test(before: np.ndarray, window: np.ndarray, *, alpha: float = DEFAULT_DRIFT_ALPHA) -> DriftResult:
    """Did a model's results in a window of votes drift from its earlier results against the same opponents?

    Why: an attacker spread over many addresses with a few votes each is invisible to every per-identity
    test, but its votes still move its target's results. Per model ``X``, each vote involving it scores
    ``+1`` (``X`` won), ``0`` (draw) or ``-1`` (``X`` lost). Under the null — on each ordered pair, the
    window's votes are exchangeable with the earlier ones — the window's score sum on a pair, given the
    pair's pooled outcomes, is a draw without replacement: mean ``n_w mu``, variance
    ``n_w (N - n_w) / (N - 1) sigma^2`` (``N`` votes pooled, ``mu``, ``sigma^2`` their score mean and
    variance). Summed over the pairs that involve ``X`` (independent), standardized, two-sided normal
    p-value, Bonferroni over the models tested: a window without manipulation holds a model with probability
    at most ``alpha`` (normal approximation; exact conditional moments). What it cannot tell: manipulation
    from a genuine change (a new model version behind the same name, a new kind of prompts). So a held
    model is a case for review, not a verdict.

    Parameters
    ----------
    before, window : ndarray, shape (M, M, 3)
        Vote counts per (contender in the first position, contender in the second, outcome code
        :data:`WIN`/:data:`LOSS`/:data:`DRAW`): the earlier votes and the window's.
    alpha : float
        Probability, per window, of holding some model when nothing changed; in (0, 1).

    Returns
    -------
    DriftResult
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    b = np.asarray(before, dtype=float)
    w = np.asarray(window, dtype=float)
    if b.ndim != 3 or b.shape != w.shape or b.shape[0] != b.shape[1] or b.shape[2] != N_OUTCOMES:
        raise ValueError("before and window must both have shape (M, M, 3)")
    if (b < 0).any() or (w < 0).any():
        raise ValueError("counts must be non-negative")
    pooled = b + w
    n_all = pooled.sum(axis=2)
    n_w = w.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.where(n_all > 0, (pooled[..., WIN] - pooled[..., LOSS]) / n_all, 0.0)   # first's mean score
        var_pop = np.where(n_all > 0, (pooled[..., WIN] + pooled[..., LOSS]) / n_all - mu ** 2, 0.0)
        shrink = np.where(n_all > 1, n_w * (n_all - n_w) / (n_all - 1), 0.0)
    excess = (w[..., WIN] - w[..., LOSS]) - n_w * mu      # the first's window score above its expectation
    var = shrink * np.maximum(var_pop, 0.0)
    # Model X: pairs with X first count as they are, pairs with X second with the sign turned; a model
    # against itself never occurs.
    signed = excess.sum(axis=1) - excess.sum(axis=0)
    variance = var.sum(axis=1) + var.sum(axis=0)
    comparable = (n_all > n_w)                             # pairs that have earlier votes
    n_window = (n_w * comparable).sum(axis=1) + (n_w * comparable).sum(axis=0)
    testable = variance > 0
    z = np.where(testable, signed / np.sqrt(np.where(testable, variance, 1.0)), 0.0)
    p = np.where(testable, 2 * stats.norm.sf(np.abs(z)), 1.0)
    level = alpha / max(int(testable.sum()), 1)
    return DriftResult(z=z, p=p, n_window=n_window.astype(int), held=testable & (p <= level), level=level)



@dataclass(frozen=True)
class DriftHold:
    """A model held by :func:`model_drift_scan`: its votes of days ``first_day..day`` await review."""

    day: int
    first_day: int
    model: int
    z: float
    p: float


def model_drift_scan(daily: np.ndarray, *, alpha: float = DEFAULT_DRIFT_ALPHA,
                     windows: Sequence[int] = DEFAULT_DRIFT_WINDOWS) -> list[DriftHold]:
    """Run :func:`model_drift_test` as a daily check would: each day, windows of several lengths ending that day.

    On day ``d`` (from 1) and for each length ``L`` in ``windows`` with ``d - L + 1 >= 1``, the window is
    days ``d - L + 1 .. d`` and the reference every day before it, at level ``alpha / len(windows)``: a day
    without manipulation holds some model with probability at most ``alpha``. A held model's votes in the
    window leave the counts (as they would leave the ratings until a review), so later windows are compared
    with unheld votes only. What it cannot see: an attack running since before the first day compared (the
    reference already carries it) or one that grows too slowly to stand out in any window.

    Parameters
    ----------
    daily : ndarray, shape (D, M, M, 3)
        Rated vote counts per day, per (first contender, second contender, outcome code).
    alpha : float
        False-hold probability per day, in (0, 1).
    windows : sequence of int
        Window lengths in days, strictly increasing, positive.

    Returns
    -------
    list of DriftHold
        In the order found (by day, then window length).
    """
    lengths = validate_checkpoints(windows)
    counts = np.array(daily, dtype=float)
    if counts.ndim != 4:
        raise ValueError("daily must have shape (days, M, M, 3)")
    holds: list[DriftHold] = []
    for d in range(1, counts.shape[0]):
        for length in lengths:
            start = d - length + 1
            if start < 1:
                continue
            result = model_drift_test(counts[:start].sum(axis=0), counts[start:d + 1].sum(axis=0),
                                      alpha=alpha / len(lengths))
            for x in np.flatnonzero(result.held):
                holds.append(DriftHold(d, start, int(x), float(result.z[x]), float(result.p[x])))
                counts[start:d + 1, x, :, :] = 0     # its votes in the window await review
                counts[start:d + 1, :, x, :] = 0
    return holds
