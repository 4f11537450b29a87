"""Preference losses for training a policy on arena votes: pure torch, no Django, no transformers.

Conventions shared by every function here:

* ``logp`` / ``ref_logp`` (B,) are the summed log-probabilities of a completion under the policy and the
  frozen reference (:func:`sequence_logps`).
* The *implicit reward* of a completion is ``s(y) = beta * (log pi(y) - log pi_ref(y))`` (:func:`rewards`).
  The pairwise, tie and K-wise losses take these **beta-scaled** rewards, so ``beta`` never appears in
  their signatures. The one exception is :func:`ipo_loss`, whose target margin ``1 / (2 beta)`` is defined
  on the **unscaled** log-ratio ``h = log pi - log pi_ref``; it takes ``h`` and ``beta``.
* Every loss returns a scalar: the mean over the batch of one loss per comparison (per pair, per ranking).
* Padded slots (``mask`` False) are filled with finite values before any arithmetic, so they add nothing
  to the loss and receive exactly zero gradient; no ``-inf`` enters a ``logsumexp`` that could make NaN
  gradients, and everything is stable for rewards of magnitude 1e3.

References
----------
Rafailov et al. 2023, "Direct Preference Optimization: Your Language Model is Secretly a Reward Model".
Mitchell 2023, "A note on DPO with noisy preferences" (cDPO / label smoothing).
Chowdhury, Kini & Natarajan 2024, "Provably Robust DPO: Aligning Language Models with Noisy Feedback".
Azar et al. 2023, "A General Theoretical Paradigm to Understand Learning from Human Preferences" (IPO).
Rao & Kupper 1967, "Ties in paired-comparison experiments: a generalization of the Bradley-Terry model";
Chen et al. 2024, "On Extending Direct Preference Optimization to Accommodate Ties".
Plackett 1975; Luce 1959; Breslow 1974, "Covariance analysis of censored survival data" (tied events).
Liu et al. 2024, "LiPO: Listwise Preference Optimization through Learning-to-Rank".
Song et al. 2023, "Preference Ranking Optimization for Human Alignment" (PRO).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "dpo_loss",
    "ipo_loss",
    "lipo_lambda_loss",
    "lipo_lambda_weights",
    "plackett_luce_loss",
    "pro_loss",
    "rao_kupper_log_probs",
    "rao_kupper_loss",
    "reward_accuracy",
    "reward_margin",
    "rewards",
    "robust_dpo_loss",
    "sequence_logps",
    "soft_dpo_loss",
]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


# --------------------------------------------------------------------------------------------------------------
# Sequence log-probabilities, rewards and metrics
# --------------------------------------------------------------------------------------------------------------

def sequence_logps(logits: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """Summed log-probability of the completion tokens of each sequence.

    ``sum_t mask[b, t] * log softmax(logits[b, t])[labels[b, t]]``

    Parameters
    ----------
    logits : Tensor
        (B, T, V), already aligned by the caller so that ``logits[:, t]`` predicts ``labels[:, t]``.
    labels : Tensor
        (B, T) long token ids. Outside ``mask`` they may be anything (``-100``, padding): they are
        replaced by 0 before indexing and their positions are zeroed afterwards.
    mask : Tensor
        (B, T) bool, True on completion tokens only.

    Returns
    -------
    Tensor
        (B,) in the logits' dtype, or float32 when the logits are float16/bfloat16 (the normaliser is then
        computed from a float32 copy of the logits: pass float32 logits or smaller batches if that copy
        does not fit).

    Notes
    -----
    ``gather`` then ``logsumexp`` never materialises a (B, T, V) log-softmax tensor of its own.
    """
    if logits.dtype in _LOW_PRECISION:
        logits = logits.float()
    safe = labels.masked_fill(~mask, 0)                                        # (B, T): no -100 reaches gather
    picked = logits.gather(-1, safe.unsqueeze(-1)).squeeze(-1)                 # (B, T, 1) -> (B, T)
    token_logp = picked - torch.logsumexp(logits, dim=-1)                      # (B, T)
    return token_logp.masked_fill(~mask, 0.0).sum(-1)                          # (B,)


def rewards(logp: Tensor, ref_logp: Tensor, beta: float) -> Tensor:
    """Implicit DPO reward ``s(y) = beta * (log pi(y) - log pi_ref(y))``, shape (B,)."""
    return beta * (logp - ref_logp)


def reward_accuracy(s_chosen: Tensor, s_rejected: Tensor) -> Tensor:
    """Share of pairs whose chosen reward is strictly above the rejected one (detached scalar)."""
    return (s_chosen.detach() > s_rejected.detach()).to(s_chosen.dtype).mean()


def reward_margin(s_chosen: Tensor, s_rejected: Tensor) -> Tensor:
    """Mean reward margin ``mean(s_chosen - s_rejected)`` (detached scalar)."""
    return (s_chosen.detach() - s_rejected.detach()).mean()


# --------------------------------------------------------------------------------------------------------------
# Pairwise losses
# --------------------------------------------------------------------------------------------------------------

def dpo_loss(s_chosen: Tensor, s_rejected: Tensor) -> Tensor:
    """DPO (Rafailov et al. 2023): ``mean(-log sigmoid(s_c - s_r))``.

    Parameters
    ----------
    s_chosen, s_rejected : Tensor
        (B,) beta-scaled implicit rewards of the preferred and the dispreferred completion.

    Returns
    -------
    Tensor
        Scalar mean loss.
    """
    return -F.logsigmoid(s_chosen - s_rejected).mean()


def soft_dpo_loss(s_chosen: Tensor, s_rejected: Tensor, p: Tensor) -> Tensor:
    """DPO against a soft target: binary cross-entropy of ``sigmoid(m)`` against ``p``.

    ``mean(-[p log sigmoid(m) + (1 - p) log sigmoid(-m)])`` with ``m = s_c - s_r``.

    ``p = 1`` is DPO; ``p = 1 - eps`` is cDPO label smoothing (Mitchell 2023); ``p = 1/2`` is the simple
    tie loss (drives the margin to zero); aggregated votes on one pair give ``p = wins / (wins + losses)``.

    Parameters
    ----------
    s_chosen, s_rejected : Tensor
        (B,) beta-scaled implicit rewards.
    p : Tensor
        (B,) (or anything broadcastable, a float included) target probability in [0, 1] that the
        "chosen" completion is preferred. Not range-checked (that would force a device sync).

    Returns
    -------
    Tensor
        Scalar mean loss.
    """
    m = s_chosen - s_rejected                                                  # (B,)
    p = torch.as_tensor(p, dtype=m.dtype, device=m.device)
    return -(p * F.logsigmoid(m) + (1.0 - p) * F.logsigmoid(-m)).mean()


def robust_dpo_loss(s_chosen: Tensor, s_rejected: Tensor, epsilon: float) -> Tensor:
    """Robust DPO (Chowdhury et al. 2024): DPO de-biased for labels flipped at rate ``epsilon``.

    ``mean([(1 - eps) * (-log sigmoid(m)) - eps * (-log sigmoid(-m))] / (1 - 2 eps))``, ``m = s_c - s_r``.

    Its expectation over random flips equals the DPO loss on the clean labels. Unlike cDPO it is not a
    cross-entropy: for ``eps > 0`` it is unbounded below (it decreases linearly, slope ``eps / (1 - 2 eps)``,
    as ``m -> inf``); with ``eps = 0`` it is DPO.

    Parameters
    ----------
    s_chosen, s_rejected : Tensor
        (B,) beta-scaled implicit rewards.
    epsilon : float
        Label flip rate, ``0 <= epsilon < 1/2``.

    Returns
    -------
    Tensor
        Scalar mean loss.

    Raises
    ------
    ValueError
        If ``epsilon`` is outside ``[0, 1/2)``.
    """
    if not 0.0 <= epsilon < 0.5:
        raise ValueError(f"robust_dpo_loss: epsilon must be in [0, 0.5), got {epsilon!r}")
    m = s_chosen - s_rejected                                                  # (B,)
    per_pair = (1.0 - epsilon) * -F.logsigmoid(m) - epsilon * -F.logsigmoid(-m)
    return (per_pair / (1.0 - 2.0 * epsilon)).mean()


def ipo_loss(h_chosen: Tensor, h_rejected: Tensor, beta: float) -> Tensor:
    """IPO (Azar et al. 2023): ``mean((h_c - h_r - 1 / (2 beta))^2)``.

    **Takes unscaled log-ratios** ``h = log pi(y) - log pi_ref(y)`` (``logp - ref_logp``), *not* the
    beta-scaled rewards that the other losses take: ``beta`` here sets the target margin ``1 / (2 beta)``.

    Parameters
    ----------
    h_chosen, h_rejected : Tensor
        (B,) unscaled policy/reference log-ratios of the preferred and dispreferred completion.
    beta : float
        Regularisation strength, > 0.

    Returns
    -------
    Tensor
        Scalar mean loss.

    Raises
    ------
    ValueError
        If ``beta`` is not positive.
    """
    if not beta > 0.0:
        raise ValueError(f"ipo_loss: beta must be > 0, got {beta!r}")
    return (h_chosen - h_rejected - 1.0 / (2.0 * beta)).pow(2).mean()


# --------------------------------------------------------------------------------------------------------------
# Ties: Rao-Kupper
# --------------------------------------------------------------------------------------------------------------

def _log_expm1(x: Tensor) -> Tensor:
    """``log(exp(x) - 1)`` for x > 0, without overflow for large x nor cancellation for small x."""
    return x + torch.log(-torch.expm1(-x))


def rao_kupper_log_probs(s_a: Tensor, s_b: Tensor, log_nu: Tensor | float) -> tuple[Tensor, Tensor, Tensor]:
    """Log-probabilities of the three outcomes under Rao-Kupper, in log space.

    With ``pi = exp(s)`` and tie parameter ``nu >= 1``::

        P(a > b) = pi_a / (pi_a + nu pi_b)               = sigmoid(d - log nu)
        P(b > a) = pi_b / (pi_b + nu pi_a)               = sigmoid(-d - log nu)
        P(tie)   = (nu^2 - 1) pi_a pi_b / ((pi_a + nu pi_b)(pi_b + nu pi_a))
                 = (nu^2 - 1) P(a > b) P(b > a)

    where ``d = s_a - s_b``; the three sum to one. ``nu = 1`` is Bradley-Terry (no ties).

    Parameters
    ----------
    s_a, s_b : Tensor
        (B,) beta-scaled implicit rewards.
    log_nu : Tensor or float
        ``log nu >= 0``, scalar or (B,). To fit ``nu``, pass ``F.softplus(raw)`` for an unconstrained
        learnable ``raw`` (i.e. ``nu = exp(softplus(raw))``); gradient flows through it. Values below 0
        are not checked for tensors (that would force a device sync) and give NaN tie probabilities.
        ``log(nu^2 - 1)`` is evaluated at ``max(log nu, 5e-13)`` so that ``log nu = 0`` gives a huge but
        finite tie penalty and no NaN gradient.

    Returns
    -------
    tuple of Tensor
        ``(log_p_win, log_p_loss, log_p_tie)``, each (B,): a beats b, b beats a, tie.

    Raises
    ------
    ValueError
        If ``log_nu`` is a float below 0.
    """
    if not isinstance(log_nu, Tensor):
        if not log_nu >= 0.0:
            raise ValueError(f"rao_kupper: log_nu must be >= 0 (nu >= 1), got {log_nu!r}")
        log_nu = torch.tensor(float(log_nu), dtype=s_a.dtype, device=s_a.device)
    d = s_a - s_b                                                              # (B,)
    log_p_win = -F.softplus(log_nu - d)                                        # log sigmoid(d - log nu)
    log_p_loss = -F.softplus(log_nu + d)                                       # log sigmoid(-d - log nu)
    log_tie_const = _log_expm1(2.0 * log_nu.clamp_min(5e-13))                  # log(nu^2 - 1), scalar or (B,)
    log_p_tie = log_tie_const + log_p_win + log_p_loss
    return log_p_win, log_p_loss, log_p_tie


def rao_kupper_loss(s_a: Tensor, s_b: Tensor, tie: Tensor, log_nu: Tensor | float) -> Tensor:
    """Tie-aware DPO with the Rao-Kupper model (Chen et al. 2024): ``mean(-log P(observed outcome))``.

    For decisive rows (``tie`` False) ``a`` is the chosen completion and the row contributes
    ``-log P(a > b) = softplus(log nu - (s_a - s_b))``; for tied rows it contributes ``-log P(tie)``
    (see :func:`rao_kupper_log_probs`). As ``log nu -> 0`` the decisive part is exactly DPO.

    Parameters
    ----------
    s_a, s_b : Tensor
        (B,) beta-scaled implicit rewards; on decisive rows ``a`` is the winner.
    tie : Tensor
        (B,) bool, True where the vote was a tie.
    log_nu : Tensor or float
        ``log nu >= 0``: a float for a fixed ``nu``, or a tensor (e.g. ``F.softplus(raw)`` of a learnable
        ``raw``) to fit it jointly; see :func:`rao_kupper_log_probs`.

    Returns
    -------
    Tensor
        Scalar mean loss over the B rows.
    """
    log_p_win, _, log_p_tie = rao_kupper_log_probs(s_a, s_b, log_nu)
    return -torch.where(tie, log_p_tie, log_p_win).mean()


# --------------------------------------------------------------------------------------------------------------
# K-wise losses
# --------------------------------------------------------------------------------------------------------------

def plackett_luce_loss(scores: Tensor, group: Tensor, mask: Tensor) -> Tensor:
    """Plackett-Luce negative log-likelihood of rankings with ties (Breslow), mean over rankings.

    For one ranking with tie groups ``G_0, G_1, ..., G_last`` (0 = best; group ids need only be ordered,
    not contiguous)::

        -log L = - sum_{i valid, group_i < last} [ s_i - log sum_{j valid, group_j >= group_i} exp(s_j) ]

    Every member of a non-last group is "chosen" from the items still in play (its own group and all
    groups below it, Breslow's rule); **the last group contributes nothing**: it is the unordered
    remainder. Hence the same rule as ``leaderboard.ratings.plackett_luce``, and:

    * a strict ranking is the usual PL product (its last item's term would be ``s - s = 0`` anyway);
    * K = 2 with groups ``[0, 1]`` is DPO: ``-log sigmoid(s_0 - s_1)``;
    * a best-of-K vote ``[0, 1, 1, ...]`` is the top-1 choice ``-(s_w - log sum_j exp(s_j))``;
    * an all-tied ranking (one group) carries no information and adds 0 (use :func:`soft_dpo_loss`
      with ``p = 1/2`` or :func:`rao_kupper_loss` for pairwise ties).

    Parameters
    ----------
    scores : Tensor
        (B, K) beta-scaled rewards of the K completions.
    group : Tensor
        (B, K) long rank group of each slot, 0 = best; tied slots share a group.
    mask : Tensor
        (B, K) bool, False on padded slots (their scores and groups are ignored; zero gradient).

    Returns
    -------
    Tensor
        Scalar: mean over the B rankings of each ranking's negative log-likelihood.
    """
    s = scores.masked_fill(~mask, 0.0)                                         # (B, K): padded slots inert
    risk = mask.unsqueeze(1) & (group.unsqueeze(1) >= group.unsqueeze(2))      # (B, K_i, K_j): j in i's risk set
    fill = torch.finfo(s.dtype).min                                            # finite: -inf would make NaN grads
    log_risk = s.unsqueeze(1).expand_as(risk).masked_fill(~risk, fill).logsumexp(-1)   # (B, K)
    last = group.masked_fill(~mask, torch.iinfo(group.dtype).min).amax(-1, keepdim=True)  # (B, 1)
    contributes = mask & (group < last)                                        # (B, K)
    return -torch.where(contributes, s - log_risk, 0.0).sum(-1).mean()


def pro_loss(scores: Tensor, group: Tensor, mask: Tensor, sft_nll: Tensor, sft_weight: float) -> Tensor:
    """PRO (Song et al. 2023): listwise Plackett-Luce ranking loss plus an SFT term on the best response.

    ``L = mean_b( -sum_{k < last} log softmax_{items at or below k}(s)_k ) + sft_weight * mean(sft_nll)``

    The ranking part is :func:`plackett_luce_loss` (Breslow rule for tied groups, last group adds
    nothing). PRO's paper scores a completion by its length-normalised policy log-probability and uses
    reward-model-dependent temperatures; here ``scores`` are whatever the caller passes (e.g. the
    beta-scaled implicit rewards) and no temperatures are applied.

    Parameters
    ----------
    scores : Tensor
        (B, K) scores of the K completions.
    group : Tensor
        (B, K) long rank group, 0 = best, ties share a group.
    mask : Tensor
        (B, K) bool, False on padded slots.
    sft_nll : Tensor
        (B,) per-token-averaged negative log-likelihood of the best response, computed by the caller.
    sft_weight : float
        Weight of the SFT term.

    Returns
    -------
    Tensor
        Scalar loss.
    """
    return plackett_luce_loss(scores, group, mask) + sft_weight * sft_nll.mean()


def lipo_lambda_weights(scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """LiPO-lambda pair weights ``lambda_ij`` (detached), shape (B, K, K); zero unless ``labels_i > labels_j``.

    ``lambda_ij = |G_i - G_j| * |1 / D(tau_i) - 1 / D(tau_j)|`` with gain ``G = 2^label - 1``, discount
    ``D(tau) = log2(1 + tau)`` and ``tau`` the 1-based rank of each valid item under the current scores
    (descending, ties broken by the lower index first; padded slots are not ranked).

    Parameters
    ----------
    scores : Tensor
        (B, K) current scores (only their order is used; no gradient flows through the weights).
    labels : Tensor
        (B, K) graded relevance, higher is better (e.g. ``K - 1 - group``).
    mask : Tensor
        (B, K) bool, False on padded slots.

    Returns
    -------
    Tensor
        (B, K, K) non-negative weights, in the scores' dtype.
    """
    s = scores.detach()
    k = s.shape[-1]
    idx = torch.arange(k, device=s.device)
    s_i, s_j = s.unsqueeze(2), s.unsqueeze(1)                                  # (B, K, 1), (B, 1, K)
    ahead = (s_j > s_i) | ((s_j == s_i) & (idx.view(1, 1, k) < idx.view(1, k, 1)))   # (B, K_i, K_j): j ranked above i
    tau = 1 + (ahead & mask.unsqueeze(1)).sum(-1)                              # (B, K) 1-based rank among valid
    inv_discount = 1.0 / torch.log2(1.0 + tau.to(s.dtype))                     # (B, K)
    y = labels.to(s.dtype)
    gain = torch.exp2(y) - 1.0                                                 # (B, K)
    pair = mask.unsqueeze(2) & mask.unsqueeze(1) & (y.unsqueeze(2) > y.unsqueeze(1))   # (B, K_i, K_j): i beats j
    lam = (gain.unsqueeze(2) - gain.unsqueeze(1)).abs() * (inv_discount.unsqueeze(2) - inv_discount.unsqueeze(1)).abs()
    return torch.where(pair, lam, 0.0)                                         # (B, K, K)


def lipo_lambda_loss(scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """LiPO-lambda (Liu et al. 2024): lambda-weighted pairwise logistic loss over a list.

    Per list::

        L = sum_{i, j: labels_i > labels_j} lambda_ij * (-log sigmoid(s_i - s_j)) / sum_{i, j} lambda_ij

    with ``lambda_ij`` from :func:`lipo_lambda_weights` (detached, from the current ranking). **Normalisation:**
    each list's loss is the lambda-weighted *average* of its pairwise logistic losses, so every list weighs
    the same whatever its K or labels, the scale matches DPO, and K = 2 with labels ``[1, 0]`` is exactly
    DPO. A list without any pair of distinct labels (all equal, or fewer than two valid slots) adds 0. The
    batch loss is the mean over all B lists.

    Parameters
    ----------
    scores : Tensor
        (B, K) beta-scaled rewards.
    labels : Tensor
        (B, K) graded relevance, higher is better (e.g. ``K - 1 - group`` from rank groups).
    mask : Tensor
        (B, K) bool, False on padded slots (no loss, zero gradient).

    Returns
    -------
    Tensor
        Scalar mean loss over the B lists.
    """
    s = scores.masked_fill(~mask, 0.0)                                         # (B, K): padded slots inert
    lam = lipo_lambda_weights(s, labels, mask)                                 # (B, K, K)
    pair_loss = -F.logsigmoid(s.unsqueeze(2) - s.unsqueeze(1))                 # (B, K_i, K_j)
    total = lam.sum((-2, -1))                                                  # (B,)
    per_list = (lam * pair_loss).sum((-2, -1)) / total.clamp_min(torch.finfo(s.dtype).tiny)   # (B,)
    return per_list.mean()
