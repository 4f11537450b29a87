"""The pure rules behind anonymity while streaming (pacing) and identity-leak flags: golden cases."""
from __future__ import annotations

import numpy as np
import pytest

from arena.leaks import find_identity_leak, identity_terms
from arena.live.pacing import Pacer, paced_release


@pytest.mark.parametrize(("produced", "released", "finished", "max_step", "expected"), [
    ([0, 40], [0, 0], [False, False], None, [0, 0]),        # B is ready, A has not started: nothing yet
    ([10, 40], [0, 0], [False, False], None, [10, 10]),     # both advance by the smaller backlog
    ([30, 40], [10, 10], [False, False], None, [30, 30]),
    ([30, 100], [30, 30], [True, False], 5, [30, 35]),      # A's text ended: B keeps the pace shown so far
    ([30, 100], [30, 30], [True, True], 5, [30, 35]),       # even once every source has finished
    ([30, 100], [30, 30], [True, True], None, [30, 100]),   # no cap: the rest at once
    ([12, 50, 20], [5, 5, 5], [True, False, False], None, [12, 20, 20]),  # finished A does not limit B, C
    ([0, 0], [0, 0], [True, True], None, [0, 0]),
])
def test_release_golden_cases(produced, released, finished, max_step, expected):
    assert paced_release(produced=produced, released=released, finished=finished, max_step=max_step) == expected


def run_pacer(lengths, speeds, starts, *, max_ticks=5000):
    """Tick a Pacer as the coordinator does over sources of known speeds; every tick's released lengths."""
    pacer, history = Pacer(len(lengths)), []
    for tick in range(max_ticks):
        produced = [int(min(n, max(0, (tick - s0) * v))) for n, v, s0 in zip(lengths, speeds, starts, strict=True)]
        finished = [p == n for p, n in zip(produced, lengths, strict=True)]
        if all(finished) and pacer.released == produced:
            break
        before = pacer.released
        after = pacer.tick(produced=produced, finished=finished)
        history.append((before, after, produced, finished, pacer.cap))
    return pacer, history


def test_simulated_streams_of_different_speeds_are_shown_in_lockstep():
    # K sources with random speeds, start delays and lengths: while two slots are both still generating
    # they show the same amount of text, nothing is taken back, and once any source has finished no
    # answer advances faster than the pace shown before.
    rng = np.random.default_rng(7)
    for _ in range(200):
        k = int(rng.integers(2, 7))
        lengths, speeds, starts = (rng.integers(1, 300, size=k), rng.integers(1, 40, size=k),
                                   rng.integers(0, 10, size=k))
        pacer, history = run_pacer(lengths, speeds, starts)
        for before, after, produced, finished, cap in history:
            assert all(b <= a <= p for b, a, p in zip(before, after, produced, strict=True))
            assert len({a for a, f in zip(after, finished, strict=True) if not f}) <= 1
            if cap is not None:
                assert max(a - b for a, b in zip(after, before, strict=True)) <= cap
        assert pacer.released == lengths.tolist()


def test_a_fast_model_does_not_jump_ahead_when_the_slow_one_finishes():
    # A writes 5 characters a tick and stops at 300; B writes 50 a tick. Without the cap B's slot would
    # jump to everything B has written the moment A finishes, then run at B's own speed.
    pacer, history = run_pacer([300, 3000], [5, 50], [0, 0])
    steps_after_a_finished = [a[1] - b[1] for b, a, _, finished, _ in history if finished[0]]
    assert steps_after_a_finished and max(steps_after_a_finished) <= 5
    assert pacer.cap == 5


def test_release_refuses_inconsistent_input():
    with pytest.raises(ValueError):
        paced_release(produced=[1], released=[2], finished=[False])
    with pytest.raises(ValueError):
        paced_release(produced=[1, 2], released=[0], finished=[False, False])
    with pytest.raises(ValueError):
        paced_release(produced=[1, 2], released=[0, 0], finished=[False, False], max_step=0)


def test_identity_terms_take_the_leading_word_organization_family_and_extras():
    terms = identity_terms(name="llama-3-8b-instruct", organization="Meta", family="llama", words=["LLaMA", "AI"])
    assert terms == ["llama-3-8b-instruct", "llama", "meta"]  # duplicates folded, 2-letter words dropped


@pytest.mark.parametrize(("text", "leak"), [
    ("I am Llama, a model by Meta.", "llama"),
    ("As LLAMA-3-8B-Instruct I cannot say.", "llama-3-8b-instruct"),
    ("The llamas of Peru are metallic.", None),      # whole words only
    ("Metadata is data about data.", None),
    ("", None),
])
def test_leaks_are_whole_words_in_any_case(text, leak):
    terms = identity_terms(name="llama-3-8b-instruct", organization="Meta", family="llama")
    assert find_identity_leak(text, terms) == leak


def test_a_pooled_answer_finished_from_the_start_follows_the_live_pace_without_fixing_it_early():
    # Slot A is pooled (all its text at tick 0), B streams 7 characters a tick: A grows with B, and once
    # A's text has ended B keeps its own pace, which was the pace shown all along.
    pacer, history = run_pacer([100, 700], [10_000, 7], [0, 0])
    assert pacer.cap == 7  # fixed when B finished, at the pace shown
    steps = [a[1] - b[1] for b, a, *_ in history if a[1] > b[1]]
    assert set(steps) == {7}
    lockstep = [a for b, a, *_ in history if a[0] < 100]
    assert all(x[0] == x[1] for x in lockstep)
