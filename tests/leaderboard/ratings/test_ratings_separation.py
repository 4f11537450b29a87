"""The planning figure 'votes until the top is separated': golden cases and refusals."""
from __future__ import annotations

import pytest

from leaderboard.ratings.separation import votes_to_separate_top


def test_already_separated_needs_nothing():
    assert votes_to_separate_top([1100, 1000], [1090, 990], [1110, 1010], [100, 100]) == 0.0


def test_overlapping_neighbours_need_votes_in_proportion_to_the_square_of_the_overlap():
    # gap 20, half-widths 20 + 20 = 40: both need (40 / 20)^2 = 4 times their votes, i.e. 3 x (100 + 100) / 2.
    assert votes_to_separate_top([1020, 1000], [1000, 980], [1040, 1020], [100, 100]) == 300.0
    # Four answers a vote: each vote shows a model against three others.
    assert votes_to_separate_top([1020, 1000], [1000, 980], [1040, 1020], [100, 100], k=4) == 100.0


def test_only_the_top_counts_and_order_of_input_does_not_matter():
    ratings, low, high, votes = [900, 1020, 1000, 800], [0, 1000, 980, 0], [2000, 1040, 1020, 2000], [5, 100, 100, 5]
    assert votes_to_separate_top(ratings, low, high, votes, top=2) == 300.0
    assert votes_to_separate_top(ratings, low, high, votes, top=4) > 300.0


@pytest.mark.parametrize(("ratings", "low", "high", "votes"), [
    ([1000, 1000], [990, 990], [1010, 1010], [10, 10]),      # a tie never separates
    ([1100, 1000], [None, 990], [1110, 1010], [10, 10]),     # an open interval
    ([1100, 1000], [1090, 990], [1110, 1010], [0, 10]),      # no votes
])
def test_unknowable_cases_say_so(ratings, low, high, votes):
    assert votes_to_separate_top(ratings, low, high, votes) is None


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        votes_to_separate_top([1, 2], [1], [1, 2], [1, 2])
    with pytest.raises(ValueError):
        votes_to_separate_top([1, 2], [1, 2], [1, 2], [1, 2], k=1)
