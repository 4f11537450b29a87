"""The pure rules behind anonymity while streaming (pacing) and identity-leak flags: golden cases."""
from __future__ import annotations

import numpy as np
import pytest

from arena.leaks import find_identity_leak, identity_terms
from arena.live.pacing import pace_cap, paced_release


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


def test_simulated_streams_of_different_speeds_are_shown_in_lockstep():
    # K sources with random speeds, start delays and lengths, ticked as the coordinator does: while two
    # slots are both unfinished they always show the same amount of text, and nothing is ever taken back.
    rng = np.random.default_rng(7)
    for _ in range(200):
        k = int(rng.integers(2, 7))
        lengths = rng.integers(1, 300, size=k)
        speeds = rng.integers(1, 40, size=k)
        starts = rng.integers(0, 10, size=k)
        released, ticks_shown = [0] * k, 0
        for tick in range(2000):
            produced = [int(min(n, max(0, (tick - s0) * v))) for n, v, s0 in zip(lengths, speeds, starts, strict=True)]
            finished = [p == n for p, n in zip(produced, lengths, strict=True)]
            if all(finished) and released == produced:
                break
            cap = pace_cap(produced=produced, released=released, finished=finished, ticks_shown=ticks_shown)
            new = paced_release(produced=produced, released=released, finished=finished, max_step=cap)
            assert all(r <= x <= p for r, x, p in zip(released, new, produced, strict=True))
            live = {x for x, f in zip(new, finished, strict=True) if not f}
            assert len(live) <= 1, (tick, produced, new)
            if cap is not None:
                # After a text has ended nobody speeds up past the average pace shown before.
                assert max(x - r for x, r in zip(new, released, strict=True)) <= cap
            ticks_shown += max(new) > 0
            released = new
        assert released == lengths.tolist()


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
