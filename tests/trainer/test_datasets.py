"""The pure core of the preference datasets: golden records from hand-built vote rows (no database)."""
from __future__ import annotations

import hashlib
import json

import pytest

from trainer.datasets import (
    DatasetInputError,
    VoteRow,
    build_records,
    canonical_jsonl,
    parse_jsonl,
    sha256_hex,
    trl_records,
)

P = "Explain rain."


def pair(vote_id: int, outcome: str, a: str = "A-text", b: str = "B-text", *, models=("ma", "mb"),
         prompt: str = P, turns: int = 1) -> VoteRow:
    return VoteRow(vote_id=vote_id, kind="pairwise", prompt=prompt, responses=(a, b), models=models,
                   outcome=outcome, user_turns=turns)


def kwise(vote_id: int, *, best: int | None = None, ranking=None, texts=("r0", "r1", "r2", "r3"),
          models=("m0", "m1", "m2", "m3")) -> VoteRow:
    kind = "best_of_k" if best is not None else "ranking"
    return VoteRow(vote_id=vote_id, kind=kind, prompt=P, responses=tuple(texts), models=tuple(models), best=best,
                   ranking=tuple(tuple(g) for g in ranking) if ranking is not None else None)


def rec(chosen: str, rejected: str, ids: list[int], p: float = 1.0, tie: bool = False, prompt: str = P) -> dict:
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, "p": p, "tie": tie, "vote_ids": ids}


# --- pairwise votes ---------------------------------------------------------------------------------------


def test_a_pairwise_win_for_a_or_b_is_one_hard_record():
    built = build_records([pair(1, "a"), pair(2, "b", "X", "Y")])
    assert built.records == [rec("A-text", "B-text", [1]), rec("Y", "X", [2])]
    assert built.vote_ids == [1, 2]
    assert built.counts["records"] == 2 and built.counts["votes_used"] == 2


def test_a_tie_is_a_tie_record_only_when_ties_are_kept():
    dropped = build_records([pair(1, "tie"), pair(2, "a", "X", "Y")])
    assert dropped.records == [rec("X", "Y", [2])]
    assert dropped.counts["ties_dropped"] == 1 and dropped.vote_ids == [2]
    kept = build_records([pair(1, "tie", "zz", "aa")], keep_ties=True)
    assert kept.records == [rec("aa", "zz", [1], p=0.5, tie=True)]   # chosen / rejected in text order


def test_both_bad_is_dropped_and_counted_even_with_ties_kept():
    built = build_records([pair(1, "both_bad"), pair(2, "a", "X", "Y")], keep_ties=True)
    assert built.records == [rec("X", "Y", [2])]
    assert built.counts["both_bad_dropped"] == 1


def test_multi_turn_and_textless_votes_are_skipped_and_counted():
    built = build_records([pair(1, "a", turns=2), pair(2, "a", "", "Y"), pair(3, "a", prompt=""),
                           pair(4, "a", "X", "Y")])
    assert built.records == [rec("X", "Y", [4])]
    assert built.counts["skipped_multi_turn"] == 1 and built.counts["skipped_no_text"] == 2
    assert built.counts["rows"] == 4


def test_a_pair_of_identical_answers_is_dropped():
    built = build_records([pair(1, "a", "same", "same"), pair(2, "a")])
    assert built.records == [rec("A-text", "B-text", [2])] and built.counts["identical_dropped"] == 1


# --- repeated votes: soft labels --------------------------------------------------------------------------


def test_repeated_votes_on_one_pair_merge_into_a_soft_label_whatever_the_positions():
    # Votes 1, 3 prefer "good" (in either position), vote 2 prefers "bad": chosen is the majority, p = 2/3.
    rows = [pair(1, "a", "good", "bad"), pair(2, "a", "bad", "good"), pair(3, "b", "bad", "good")]
    built = build_records(rows)
    assert built.records == [rec("good", "bad", [1, 2, 3], p=2 / 3)]
    assert built.counts["merged"] == 2 and built.counts["votes_used"] == 3


def test_ties_among_repeats_count_half_for_each_side_when_kept_and_nothing_when_dropped():
    rows = [pair(1, "a", "good", "bad"), pair(2, "tie", "bad", "good")]
    assert build_records(rows, keep_ties=True).records == [rec("good", "bad", [1, 2], p=0.75)]
    dropped = build_records(rows)
    assert dropped.records == [rec("good", "bad", [1])] and dropped.counts["ties_dropped"] == 1


def test_an_even_split_is_a_soft_half_not_a_tie_and_chosen_sorts_first():
    built = build_records([pair(1, "a", "zeta", "alpha"), pair(2, "b", "zeta", "alpha")])
    assert built.records == [rec("alpha", "zeta", [1, 2], p=0.5, tie=False)]


def test_the_same_answers_to_another_prompt_are_another_record():
    built = build_records([pair(1, "a", prompt="one?"), pair(2, "a", prompt="two?")])
    assert [r["prompt"] for r in built.records] == ["one?", "two?"] and built.counts["merged"] == 0


# --- K-wise votes in each mode ----------------------------------------------------------------------------


RANKED = kwise(7, ranking=[[2], [0, 3], [1]])   # r2 best; r0 and r3 tie; r1 last
BEST = kwise(8, best=1)


def test_rankings_mode_lists_the_answers_best_first_with_groups_of_indices():
    built = build_records([RANKED, BEST], mode="rankings")
    assert built.records == [
        {"prompt": P, "responses": ["r2", "r0", "r3", "r1"], "ranking": [[0], [1, 2], [3]], "vote_ids": [7]},
        {"prompt": P, "responses": ["r1", "r0", "r2", "r3"], "ranking": [[0], [1, 2, 3]], "vote_ids": [8]},
    ]


def test_an_all_tied_ranking_is_a_tie_in_rankings_mode():
    tied = kwise(9, ranking=[[0, 1, 2, 3]])
    assert build_records([tied], mode="rankings").counts["ties_dropped"] == 1
    assert build_records([tied], mode="rankings", keep_ties=True).records[0]["ranking"] == [[0, 1, 2, 3]]


def test_all_pairs_emits_every_ordered_pair_and_the_tied_pair_only_when_ties_are_kept():
    built = build_records([RANKED], mode="all_pairs")
    got = {(r["chosen"], r["rejected"]) for r in built.records}
    assert got == {("r2", "r0"), ("r2", "r3"), ("r2", "r1"), ("r0", "r1"), ("r3", "r1")}
    assert built.counts["ties_dropped"] == 1
    kept = build_records([RANKED], mode="all_pairs", keep_ties=True)
    assert rec("r0", "r3", [7], p=0.5, tie=True) in kept.records and len(kept.records) == 6
    # The pairs of one vote are ordered by chosen, then rejected text: the file does not depend on positions.
    assert [r["chosen"] + r["rejected"] for r in built.records] == ["r0r1", "r2r0", "r2r1", "r2r3", "r3r1"]


def test_best_of_k_says_nothing_about_the_answers_that_were_not_chosen():
    for mode in ("all_pairs", "best_vs_rest"):
        built = build_records([BEST], mode=mode, keep_ties=True)
        assert {(r["chosen"], r["rejected"]) for r in built.records} == {("r1", "r0"), ("r1", "r2"), ("r1", "r3")}
        assert built.counts["ties_dropped"] == 0


def test_best_vs_rest_keeps_only_the_pairs_with_the_top_group():
    built = build_records([RANKED], mode="best_vs_rest", keep_ties=True)
    assert {(r["chosen"], r["rejected"]) for r in built.records} == {("r2", "r0"), ("r2", "r3"), ("r2", "r1")}


def test_curriculum_orders_pairs_by_rating_gap_largest_first_and_unrated_last():
    ratings = {"m0": 1000.0, "m1": 1300.0, "m2": 1100.0}     # m3 has no rating
    built = build_records([kwise(5, ranking=[[1], [2], [0], [3]])], mode="curriculum", ratings=ratings)
    order = [(r["chosen"], r["rejected"]) for r in built.records]
    # gaps: r1-r0 300, r1-r2 200, r2-r0 100; pairs with m3 (no rating) last, by their texts.
    assert order == [("r1", "r0"), ("r1", "r2"), ("r2", "r0"), ("r0", "r3"), ("r1", "r3"), ("r2", "r3")]
    # Pairwise votes take part too: a 500-point gap comes before all of those, even with a later vote id.
    mixed = build_records([kwise(5, ranking=[[1], [2], [0], [3]]), pair(9, "a", models=("m0", "mx"))],
                          mode="curriculum", ratings={**ratings, "mx": 1500.0})
    assert mixed.records[0] == rec("A-text", "B-text", [9])


def test_curriculum_without_ratings_keeps_the_vote_order():
    built = build_records([pair(2, "a", "X", "Y"), pair(1, "a")], mode="curriculum")
    assert [r["vote_ids"] for r in built.records] == [[1], [2]]


# --- the canonical file -----------------------------------------------------------------------------------


def test_the_file_is_sorted_by_smallest_vote_id_and_independent_of_row_order():
    rows = [pair(5, "a", "X", "Y"), RANKED, pair(3, "b"), pair(9, "a", "good", "bad"), pair(1, "a", "bad", "good")]
    forward = canonical_jsonl(build_records(rows, mode="rankings").records)
    backward = canonical_jsonl(build_records(rows[::-1], mode="rankings").records)
    assert forward == backward
    ids = [json.loads(line)["vote_ids"][0] for line in forward.decode().splitlines()]
    assert ids == sorted(ids) == [1, 3, 5, 7]


def test_canonical_lines_are_sorted_compact_utf8_with_a_final_newline():
    data = canonical_jsonl(build_records([pair(1, "a", "café ☕", "tea")]).records)
    assert data == ('{"chosen":"café ☕","p":1.0,"prompt":"Explain rain.","rejected":"tea","tie":false,'
                    '"vote_ids":[1]}\n').encode()
    assert sha256_hex(data) == hashlib.sha256(data).hexdigest()
    assert parse_jsonl(data) == [rec("café ☕", "tea", [1])]


def test_trl_rows_have_only_prompt_chosen_rejected_and_drop_ties_and_splits():
    records = build_records([pair(1, "tie", "t1", "t2"), pair(2, "a", "z", "y"), pair(3, "b", "z", "y"),
                             pair(4, "a"), RANKED], mode="rankings", keep_ties=True).records
    rows = trl_records(records)
    assert all(set(r) == {"prompt", "chosen", "rejected"} for r in rows)
    pairs = [(r["chosen"], r["rejected"]) for r in rows]
    assert pairs == [("A-text", "B-text"), ("r2", "r0"), ("r2", "r3"), ("r2", "r1"), ("r0", "r1"), ("r3", "r1")]


@pytest.mark.parametrize(("row", "field"), [
    (VoteRow(vote_id=1, kind="nope", prompt=P, responses=("a", "b"), models=("x", "y")), "kind"),
    (VoteRow(vote_id=1, kind="pairwise", prompt=P, responses=("a", "b"), models=("x",), outcome="a"), "models"),
    (VoteRow(vote_id=1, kind="pairwise", prompt=P, responses=("a", "b"), models=("x", "y"), outcome="c"), "outcome"),
    (VoteRow(vote_id=1, kind="best_of_k", prompt=P, responses=("a", "b", "c"), models=("x", "y", "z"), best=3),
     "best"),
    (VoteRow(vote_id=1, kind="ranking", prompt=P, responses=("a", "b", "c"), models=("x", "y", "z"),
             ranking=((0,), (1,))), "ranking"),
])
def test_malformed_rows_are_refused_naming_the_field(row, field):
    with pytest.raises(DatasetInputError) as caught:
        build_records([row])
    assert caught.value.field == field


def test_an_unknown_mode_is_refused():
    with pytest.raises(DatasetInputError) as caught:
        build_records([], mode="pairs")
    assert caught.value.field == "mode"
