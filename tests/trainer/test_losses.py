"""Preference losses: golden values, gradient checks, identities between losses, stability, simulations."""
from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from trainer.losses import (
    dpo_loss,
    ipo_loss,
    lipo_lambda_loss,
    lipo_lambda_weights,
    plackett_luce_loss,
    pro_loss,
    rao_kupper_log_probs,
    rao_kupper_loss,
    reward_accuracy,
    reward_margin,
    rewards,
    robust_dpo_loss,
    sequence_logps,
    soft_dpo_loss,
)

F64 = torch.float64


def t(values, dtype=F64, **kw) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype, **kw)


def nls(x: float) -> float:
    """-log sigmoid(x) = log(1 + e^-x), from math only."""
    return math.log1p(math.exp(-x))


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------------------------------------------
# sequence_logps and helpers
# ----------------------------------------------------------------------------------------------------------------

def test_sequence_logps_matches_a_manual_sum_over_masked_tokens():
    logits = torch.randn(2, 4, 5, generator=gen(1), dtype=F64)
    labels = torch.tensor([[-100, 3, 1, -100], [-100, -100, 4, 0]])            # -100 only outside the mask
    mask = torch.tensor([[False, True, True, False], [False, False, True, True]])
    expected = []
    for b in range(2):
        total = 0.0
        for step in range(4):
            if mask[b, step]:
                row = logits[b, step].tolist()
                total += row[labels[b, step]] - math.log(sum(math.exp(x) for x in row))
        expected.append(total)
    got = sequence_logps(logits, labels, mask)
    assert got.shape == (2,)
    assert got.tolist() == pytest.approx(expected, abs=1e-12)


def test_sequence_logps_gradients_and_low_precision():
    logits = torch.randn(2, 4, 5, generator=gen(2), dtype=F64, requires_grad=True)
    labels = torch.tensor([[0, 3, 1, -100], [2, -100, 4, 0]])
    mask = labels != -100
    assert gradcheck(lambda x: sequence_logps(x, labels, mask), (logits,))
    out = sequence_logps(logits.detach().to(torch.bfloat16), labels, mask)
    assert out.dtype == torch.float32                                          # bf16 logits: computed in float32
    assert out.tolist() == pytest.approx(sequence_logps(logits.detach(), labels, mask).tolist(), abs=0.1)


def test_reward_helpers():
    s = rewards(t([-3.0, -5.0]), t([-4.0, -4.0]), 0.1)
    assert s.tolist() == pytest.approx([0.1, -0.1])
    assert reward_accuracy(t([1.0, 0.0, 2.0]), t([0.0, 1.0, 1.0])).item() == pytest.approx(2 / 3)
    assert reward_margin(t([1.0, 0.0]), t([0.0, 1.0])).item() == pytest.approx(0.0)


# ----------------------------------------------------------------------------------------------------------------
# Pairwise losses: golden values
# ----------------------------------------------------------------------------------------------------------------

S_C, S_R = [1.0, -0.5], [0.2, 0.5]                                              # margins m = 0.8, -1.0
MARGINS = [0.8, -1.0]


def test_dpo_golden():
    expected = (nls(0.8) + nls(-1.0)) / 2                                      # mean of log(1 + e^-m)
    assert dpo_loss(t(S_C), t(S_R)).item() == pytest.approx(expected, abs=1e-12)


def test_soft_dpo_golden():
    p = [0.7, 0.5]
    expected = sum(pi * nls(m) + (1 - pi) * nls(-m) for pi, m in zip(p, MARGINS, strict=True)) / 2
    assert soft_dpo_loss(t(S_C), t(S_R), t(p)).item() == pytest.approx(expected, abs=1e-12)


def test_robust_dpo_golden():
    eps = 0.2
    expected = sum(((1 - eps) * nls(m) - eps * nls(-m)) / (1 - 2 * eps) for m in MARGINS) / 2
    assert robust_dpo_loss(t(S_C), t(S_R), eps).item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("eps", [-0.01, 0.5, 0.7, float("nan")])
def test_robust_dpo_refuses_flip_rates_outside_the_half_open_interval(eps):
    with pytest.raises(ValueError, match="epsilon"):
        robust_dpo_loss(t(S_C), t(S_R), eps)


def test_ipo_golden_takes_unscaled_log_ratios():
    # beta = 0.5 -> target margin 1 / (2 * 0.5) = 1; margins h_c - h_r = 0.5 and -0.3.
    expected = ((0.5 - 1.0) ** 2 + (-0.3 - 1.0) ** 2) / 2                      # (0.25 + 1.69) / 2 = 0.97
    assert ipo_loss(t([1.0, 0.0]), t([0.5, 0.3]), 0.5).item() == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="beta"):
        ipo_loss(t([1.0]), t([0.5]), 0.0)


def test_soft_dpo_with_p_one_and_robust_dpo_with_eps_zero_are_dpo():
    s_c = torch.randn(32, generator=gen(3), dtype=F64, requires_grad=True)
    s_r = torch.randn(32, generator=gen(4), dtype=F64, requires_grad=True)
    ref = dpo_loss(s_c, s_r)
    ref_grads = torch.autograd.grad(ref, (s_c, s_r))
    for loss in (soft_dpo_loss(s_c, s_r, torch.ones(32, dtype=F64)), soft_dpo_loss(s_c, s_r, 1.0),
                 robust_dpo_loss(s_c, s_r, 0.0)):
        assert loss.item() == pytest.approx(ref.item(), abs=1e-12)
        for g, r in zip(torch.autograd.grad(loss, (s_c, s_r)), ref_grads, strict=True):
            torch.testing.assert_close(g, r, atol=1e-12, rtol=0)


def test_pairwise_gradchecks():
    s_c = torch.randn(5, generator=gen(5), dtype=F64, requires_grad=True)
    s_r = torch.randn(5, generator=gen(6), dtype=F64, requires_grad=True)
    p = torch.rand(5, generator=gen(7), dtype=F64, requires_grad=True)
    assert gradcheck(dpo_loss, (s_c, s_r))
    assert gradcheck(soft_dpo_loss, (s_c, s_r, p))
    assert gradcheck(lambda a, b: robust_dpo_loss(a, b, 0.3), (s_c, s_r))
    assert gradcheck(lambda a, b: ipo_loss(a, b, 0.1), (s_c, s_r))


# ----------------------------------------------------------------------------------------------------------------
# Rao-Kupper
# ----------------------------------------------------------------------------------------------------------------

def test_rao_kupper_golden():
    nu = 1.5
    s_a, s_b, tie = [0.3, 1.0], [-0.2, 1.5], [False, True]
    # Row 0, decisive: P(a > b) = pi_a / (pi_a + nu pi_b).
    pa, pb = math.exp(0.3), math.exp(-0.2)
    row0 = -math.log(pa / (pa + nu * pb))
    # Row 1, tie: (nu^2 - 1) pi_a pi_b / ((pi_a + nu pi_b)(pi_b + nu pi_a)).
    pa, pb = math.exp(1.0), math.exp(1.5)
    row1 = -math.log((nu**2 - 1) * pa * pb / ((pa + nu * pb) * (pb + nu * pa)))
    for log_nu in (math.log(nu), t(math.log(nu))):
        got = rao_kupper_loss(t(s_a), t(s_b), torch.tensor(tie), log_nu)
        assert got.item() == pytest.approx((row0 + row1) / 2, abs=1e-12)


def test_rao_kupper_probabilities_sum_to_one():
    s_a = torch.randn(50, generator=gen(8), dtype=F64) * 3
    s_b = torch.randn(50, generator=gen(9), dtype=F64) * 3
    for log_nu in (1e-6, 0.1, 1.0, 5.0, torch.rand(50, generator=gen(10), dtype=F64) * 2):
        win, loss, tie = rao_kupper_log_probs(s_a, s_b, log_nu)
        total = win.exp() + loss.exp() + tie.exp()
        torch.testing.assert_close(total, torch.ones(50, dtype=F64), atol=1e-12, rtol=0)


def test_rao_kupper_with_nu_to_one_is_dpo_on_decisive_rows():
    s_a = torch.randn(32, generator=gen(11), dtype=F64, requires_grad=True)
    s_b = torch.randn(32, generator=gen(12), dtype=F64, requires_grad=True)
    tie = torch.zeros(32, dtype=torch.bool)
    rk = rao_kupper_loss(s_a, s_b, tie, 1e-9)
    ref = dpo_loss(s_a, s_b)
    assert rk.item() == pytest.approx(ref.item(), abs=1e-8)
    for g, r in zip(torch.autograd.grad(rk, (s_a, s_b)), torch.autograd.grad(ref, (s_a, s_b)), strict=True):
        torch.testing.assert_close(g, r, atol=1e-8, rtol=0)


def test_rao_kupper_gradcheck_including_a_learnable_nu():
    s_a = torch.randn(6, generator=gen(13), dtype=F64, requires_grad=True)
    s_b = torch.randn(6, generator=gen(14), dtype=F64, requires_grad=True)
    tie = torch.tensor([False, True, False, True, True, False])
    raw = t(0.3, requires_grad=True)
    assert gradcheck(lambda a, b, r: rao_kupper_loss(a, b, tie, F.softplus(r)), (s_a, s_b, raw))
    log_nu = t(0.7, requires_grad=True)                                        # log nu passed directly
    assert gradcheck(lambda a, b, ln: rao_kupper_loss(a, b, tie, ln), (s_a, s_b, log_nu))
    rao_kupper_loss(s_a, s_b, tie, log_nu).backward()
    assert log_nu.grad is not None and log_nu.grad.item() != 0.0


def test_rao_kupper_refuses_a_negative_float_log_nu():
    with pytest.raises(ValueError, match="log_nu"):
        rao_kupper_loss(t([0.0]), t([0.0]), torch.tensor([False]), -0.1)


def test_rao_kupper_at_nu_exactly_one_has_no_nan_gradient():
    log_nu = t(0.0, requires_grad=True)
    loss = rao_kupper_loss(t([0.5, 0.1]), t([0.0, 0.2]), torch.tensor([False, True]), log_nu)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(log_nu.grad)


# ----------------------------------------------------------------------------------------------------------------
# Plackett-Luce and PRO
# ----------------------------------------------------------------------------------------------------------------

S3 = [0.3, -0.1, 0.5]


def lse(xs: list[float]) -> float:
    return math.log(sum(math.exp(x) for x in xs))


def test_plackett_luce_golden_strict_tied_and_padded():
    a, b, c = S3
    # Strict a > b > c: (a - lse(a, b, c)) + (b - lse(b, c)); c, the last group, adds nothing.
    strict = -((a - lse(S3)) + (b - lse([b, c])))
    # (a = b) > c (Breslow): each of a and b is chosen from {a, b, c}.
    tied = -((a - lse(S3)) + (b - lse(S3)))
    # Best-of-3, c wins: c > (a = b): top-1 choice.
    best = -(c - lse(S3))
    # Padded: slots a, c with c > a, slot b is padding: -log sigmoid(c - a).
    padded = nls(c - a)
    scores = t([S3, S3, S3, S3])
    group = torch.tensor([[0, 1, 2], [0, 0, 1], [1, 1, 0], [1, 7, 0]])
    mask = torch.tensor([[True] * 3, [True] * 3, [True] * 3, [True, False, True]])
    got = plackett_luce_loss(scores, group, mask)
    assert got.item() == pytest.approx((strict + tied + best + padded) / 4, abs=1e-12)
    # One ranking at a time, to pin down each case.
    for row, expected in enumerate((strict, tied, best, padded)):
        one = plackett_luce_loss(scores[row:row + 1], group[row:row + 1], mask[row:row + 1])
        assert one.item() == pytest.approx(expected, abs=1e-12)


def test_plackett_luce_all_tied_ranking_carries_no_information():
    scores = t([[0.4, -2.0, 1.0]], requires_grad=True)
    loss = plackett_luce_loss(scores, torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 3, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and scores.grad.abs().max().item() == 0.0


def test_plackett_luce_on_pairs_is_dpo_values_and_gradients():
    scores = torch.randn(64, 2, generator=gen(15), dtype=F64, requires_grad=True)
    flip = torch.rand(64, generator=gen(16)) < 0.5
    group = torch.stack([flip.long(), (~flip).long()], dim=1)                  # (B, 2): [0, 1] or [1, 0]
    mask = torch.ones(64, 2, dtype=torch.bool)
    pl = plackett_luce_loss(scores, group, mask)
    winner = torch.where(flip, scores[:, 1], scores[:, 0])
    loser = torch.where(flip, scores[:, 0], scores[:, 1])
    ref = dpo_loss(winner, loser)
    assert pl.item() == pytest.approx(ref.item(), abs=1e-12)
    g_pl, = torch.autograd.grad(pl, scores)
    g_ref, = torch.autograd.grad(ref, scores)
    torch.testing.assert_close(g_pl, g_ref, atol=1e-12, rtol=0)


def random_rankings(b: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random scores and rank groups (with ties) for b rankings of k items."""
    g = gen(seed)
    scores = torch.randn(b, k, generator=g, dtype=F64) * 2
    group = torch.randint(0, k - 1, (b, k), generator=g)
    return scores, group


def test_plackett_luce_is_shift_invariant():
    scores, group = random_rankings(16, 5, seed=17)
    mask = torch.ones(16, 5, dtype=torch.bool)
    shift = torch.randn(16, 1, generator=gen(18), dtype=F64) * 50
    torch.testing.assert_close(plackett_luce_loss(scores + shift, group, mask),
                               plackett_luce_loss(scores, group, mask), atol=1e-10, rtol=0)


@pytest.mark.parametrize("loss_name", ["pl", "pro", "lipo"])
def test_padded_slots_change_nothing_and_get_no_gradient(loss_name):
    scores, group = random_rankings(8, 4, seed=19)
    mask = torch.ones(8, 4, dtype=torch.bool)
    sft = torch.rand(8, generator=gen(20), dtype=F64)
    fns: dict[str, Callable[..., torch.Tensor]] = {
        "pl": lambda s, grp, m: plackett_luce_loss(s, grp, m),
        "pro": lambda s, grp, m: pro_loss(s, grp, m, sft, 0.3),
        "lipo": lambda s, grp, m: lipo_lambda_loss(s, 3 - grp, m),
    }
    fn = fns[loss_name]
    # Two garbage padded slots: huge scores and arbitrary groups (best and worst).
    padded_scores = torch.cat([scores, t([[1e4, -1e4]] * 8)], dim=1).requires_grad_()
    padded_group = torch.cat([group, torch.tensor([[0, 9]] * 8)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(8, 2, dtype=torch.bool)], dim=1)
    full = fn(padded_scores, padded_group, padded_mask)
    assert full.item() == pytest.approx(fn(scores, group, mask).item(), abs=1e-12)
    full.backward()
    assert padded_scores.grad[:, 4:].abs().max().item() == 0.0


def test_kwise_gradchecks():
    scores, group = random_rankings(4, 4, seed=21)
    mask = torch.tensor([[True] * 4, [True, True, True, False], [True, False, True, True], [True] * 4])
    scores.requires_grad_()
    sft = torch.rand(4, generator=gen(22), dtype=F64, requires_grad=True)
    assert gradcheck(lambda s: plackett_luce_loss(s, group, mask), (scores,))
    assert gradcheck(lambda s, n: pro_loss(s, group, mask, n, 0.5), (scores, sft))
    assert gradcheck(lambda s: lipo_lambda_loss(s, 3 - group, mask), (scores,))


def test_pro_is_plackett_luce_plus_weighted_sft():
    a, b, c = S3
    sft = [2.0, 1.0]
    expected = -((a - lse(S3)) + (b - lse([b, c]))) + 0.5 * sum(sft) / 2      # both rows: a > b > c
    got = pro_loss(t([S3, S3]), torch.tensor([[0, 1, 2]] * 2), torch.ones(2, 3, dtype=torch.bool), t(sft), 0.5)
    assert got.item() == pytest.approx(expected, abs=1e-12)


# ----------------------------------------------------------------------------------------------------------------
# LiPO-lambda
# ----------------------------------------------------------------------------------------------------------------

def test_lipo_lambda_weights_and_loss_by_hand():
    scores, labels = [2.0, 1.0, 0.5], [0, 2, 1]
    # Ranks under the scores: tau = 1, 2, 3; inverse discounts 1/log2(1 + tau).
    inv_d = [1 / math.log2(2), 1 / math.log2(3), 1 / math.log2(4)]
    gain = [2**y - 1 for y in labels]                                           # 0, 3, 1
    lam = {(1, 0): abs(gain[1] - gain[0]) * abs(inv_d[1] - inv_d[0]),          # 3 * (1 - 0.6309) = 1.107
           (1, 2): abs(gain[1] - gain[2]) * abs(inv_d[1] - inv_d[2]),          # 2 * (0.6309 - 0.5) = 0.262
           (2, 0): abs(gain[2] - gain[0]) * abs(inv_d[2] - inv_d[0])}          # 1 * (1 - 0.5) = 0.5
    weights = lipo_lambda_weights(t([scores]), torch.tensor([labels]), torch.ones(1, 3, dtype=torch.bool))[0]
    expected_w = torch.zeros(3, 3, dtype=F64)
    for (i, j), w in lam.items():
        expected_w[i, j] = w
    torch.testing.assert_close(weights, expected_w, atol=1e-12, rtol=0)
    expected = sum(w * nls(scores[i] - scores[j]) for (i, j), w in lam.items()) / sum(lam.values())
    got = lipo_lambda_loss(t([scores]), torch.tensor([labels]), torch.ones(1, 3, dtype=torch.bool))
    assert got.item() == pytest.approx(expected, abs=1e-12)


def test_lipo_ranks_ties_by_index():
    # Equal scores: slot 0 ranks first (tau 1), slot 1 second (tau 2).
    weights = lipo_lambda_weights(t([[0.0, 0.0]]), torch.tensor([[0, 1]]), torch.ones(1, 2, dtype=torch.bool))
    assert weights[0, 1, 0].item() == pytest.approx(1 * (1 - 1 / math.log2(3)), abs=1e-12)


def test_lipo_equal_labels_give_zero_loss_and_zero_gradient():
    scores = torch.randn(3, 4, generator=gen(23), dtype=F64, requires_grad=True)
    loss = lipo_lambda_loss(scores, torch.full((3, 4), 2), torch.ones(3, 4, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and scores.grad.abs().max().item() == 0.0


def test_lipo_on_pairs_is_dpo():
    scores = torch.randn(16, 2, generator=gen(24), dtype=F64)
    got = lipo_lambda_loss(scores, torch.tensor([[1, 0]] * 16), torch.ones(16, 2, dtype=torch.bool))
    assert got.item() == pytest.approx(dpo_loss(scores[:, 0], scores[:, 1]).item(), abs=1e-12)


# ----------------------------------------------------------------------------------------------------------------
# Stability
# ----------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_every_loss_is_finite_for_rewards_of_magnitude_1e3(dtype):
    big = torch.tensor([1e3, -1e3, 1e3, -1e3], dtype=dtype)
    s_c = big.clone().requires_grad_()
    s_r = (-big).requires_grad_()
    tie = torch.tensor([False, True, True, False])
    log_nu = torch.tensor(0.5, dtype=dtype, requires_grad=True)
    scores = torch.tensor([[1e3, -1e3, 0.0], [-1e3, 1e3, 1e3], [1e3, 1e3, -1e3], [0.0, -1e3, 1e3]],
                          dtype=dtype, requires_grad=True)
    group = torch.tensor([[0, 1, 2], [0, 1, 1], [1, 0, 2], [0, 0, 1]])
    mask = torch.tensor([[True] * 3, [True] * 3, [True, True, False], [True] * 3])
    sft = torch.ones(4, dtype=dtype)
    losses = {
        "dpo": lambda: dpo_loss(s_c, s_r),
        "soft": lambda: soft_dpo_loss(s_c, s_r, torch.full((4,), 0.3, dtype=dtype)),
        "robust": lambda: robust_dpo_loss(s_c, s_r, 0.25),
        "ipo": lambda: ipo_loss(s_c, s_r, 0.1),
        "rao_kupper": lambda: rao_kupper_loss(s_c, s_r, tie, log_nu),
        "pl": lambda: plackett_luce_loss(scores, group, mask),
        "pro": lambda: pro_loss(scores, group, mask, sft, 1.0),
        "lipo": lambda: lipo_lambda_loss(scores, 2 - group, mask),
    }
    for name, make in losses.items():
        loss = make()
        params = [p for p in (s_c, s_r, log_nu, scores) if p.requires_grad]
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        assert torch.isfinite(loss), name
        assert all(g is None or torch.isfinite(g).all() for g in grads), name


# ----------------------------------------------------------------------------------------------------------------
# Planted preferences: per-item scores trained on simulated votes recover the true order
# ----------------------------------------------------------------------------------------------------------------

N_ITEMS = 8


def spearman(x: torch.Tensor, y: torch.Tensor) -> float:
    rx = x.argsort().argsort().to(F64)
    ry = y.argsort().argsort().to(F64)
    return torch.corrcoef(torch.stack([rx, ry]))[0, 1].item()


def true_strengths() -> torch.Tensor:
    return torch.linspace(-1.5, 1.5, N_ITEMS, dtype=F64)[torch.randperm(N_ITEMS, generator=gen(100))]


def fit(objective: Callable[[torch.Tensor], torch.Tensor], extra: list[torch.Tensor] | None = None,
        steps: int = 300) -> torch.Tensor:
    w = torch.zeros(N_ITEMS, dtype=F64, requires_grad=True)
    opt = torch.optim.Adam([w, *(extra or [])], lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        objective(w).backward()
        opt.step()
    return w.detach()


def simulate_pairs(theta: torch.Tensor, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n comparisons of distinct random items; returns (i, j, i_won) under Bradley-Terry."""
    g = gen(seed)
    i = torch.randint(0, N_ITEMS, (n,), generator=g)
    j = (i + torch.randint(1, N_ITEMS, (n,), generator=g)) % N_ITEMS           # j != i
    i_won = torch.rand(n, generator=g, dtype=F64) < torch.sigmoid(theta[i] - theta[j])
    return i, j, i_won


@pytest.mark.parametrize("loss_name", ["dpo", "soft", "robust", "ipo"])
def test_pairwise_losses_recover_planted_order(loss_name):
    theta = true_strengths()
    i, j, i_won = simulate_pairs(theta, 3000, seed=101)
    chosen, rejected = torch.where(i_won, i, j), torch.where(i_won, j, i)
    if loss_name == "dpo":
        w = fit(lambda w: dpo_loss(w[chosen], w[rejected]))
    elif loss_name == "ipo":
        w = fit(lambda w: ipo_loss(w[chosen], w[rejected], 0.5))
    elif loss_name == "robust":
        flipped = torch.rand(3000, generator=gen(102)) < 0.2                   # planted label noise, eps = 0.2
        c, r = torch.where(flipped, rejected, chosen), torch.where(flipped, chosen, rejected)
        w = fit(lambda w: robust_dpo_loss(w[c], w[r], 0.2))
    else:                                                                      # votes aggregated per ordered pair
        key = i * N_ITEMS + j
        wins = torch.bincount(key, weights=i_won.to(F64), minlength=N_ITEMS**2)
        total = torch.bincount(key, minlength=N_ITEMS**2).to(F64)
        seen = total > 0
        a, b = seen.nonzero().squeeze(1).div(N_ITEMS, rounding_mode="floor"), seen.nonzero().squeeze(1) % N_ITEMS
        p = wins[seen] / total[seen]
        w = fit(lambda w: soft_dpo_loss(w[a], w[b], p))
    assert spearman(w, theta) >= 0.9


def test_rao_kupper_recovers_planted_order_and_tie_parameter():
    theta, nu = true_strengths(), 1.6
    g = gen(103)
    n = 4000
    i = torch.randint(0, N_ITEMS, (n,), generator=g)
    j = (i + torch.randint(1, N_ITEMS, (n,), generator=g)) % N_ITEMS
    pi, pj = theta[i].exp(), theta[j].exp()
    p_win, p_loss = pi / (pi + nu * pj), pj / (pj + nu * pi)
    u = torch.rand(n, generator=g, dtype=F64)
    won, lost = u < p_win, (u >= p_win) & (u < p_win + p_loss)
    tie = ~(won | lost)
    a, b = torch.where(lost, j, i), torch.where(lost, i, j)                    # decisive rows: a is the winner
    raw = torch.zeros((), dtype=F64, requires_grad=True)
    w = fit(lambda w: rao_kupper_loss(w[a], w[b], tie, F.softplus(raw)), extra=[raw], steps=400)
    assert spearman(w, theta) >= 0.9
    assert math.exp(F.softplus(raw).item()) == pytest.approx(nu, abs=0.2)


@pytest.mark.parametrize("loss_name", ["pl", "pro", "lipo"])
def test_kwise_losses_recover_planted_order(loss_name):
    theta, k, n = true_strengths(), 4, 1500
    g = gen(104)
    items = torch.rand(n, N_ITEMS, generator=g).argsort(dim=1)[:, :k]          # (n, k) distinct items per battle
    gumbel = -torch.log(-torch.log(torch.rand(n, k, generator=g, dtype=F64)))
    group = (theta[items] + gumbel).argsort(dim=1, descending=True).argsort(dim=1)   # (n, k): PL rank of each slot
    mask = torch.ones(n, k, dtype=torch.bool)
    sft = torch.zeros(n, dtype=F64)
    objective = {
        "pl": lambda w: plackett_luce_loss(w[items], group, mask),
        "pro": lambda w: pro_loss(w[items], group, mask, sft, 1.0),
        "lipo": lambda w: lipo_lambda_loss(w[items], k - 1 - group, mask),
    }[loss_name]
    assert spearman(fit(objective), theta) >= 0.9
