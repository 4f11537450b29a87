"""The vote tallies that refits read stay equal to what the votes say, whatever happens to the votes."""
from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import datetime, timedelta
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from arena.models import Contender, PairTallyAll, PairTallyChange, PairTallyDay, Vote, VoteFlagCode, VoteKind, Voter
from arena.moderation import vote_flag_add, voter_flag_set
from arena.services import SlotInput, battle_create, vote_record, voter_get_or_create
from arena.tallies import tallies_fold, tally_snapshot
from arena.verdicts import VoteChoice
from leaderboard import selectors
from leaderboard.config import LeaderboardConfig
from leaderboard.selectors import OUTCOME_CODE

MODELS = [f"model-{i}" for i in range(5)]
LANGUAGES = ["en", "de", ""]
CATEGORIES = ["poetry", "coding", ""]


@pytest.fixture
def models(db) -> list[Contender]:
    return [Contender.objects.create(name=name) for name in MODELS]


def _site_vote(rng: np.random.Generator, voters: list[Voter], *, k: int, leak: bool = False) -> Vote:
    voter = voters[rng.integers(len(voters))]
    names = list(rng.choice(MODELS, size=k, replace=False))
    # An answer that names its model is an identity leak: the vote is stored flagged.
    slots = [SlotInput(contender=n, response=f"I am {n}." if leak and i == 0 else "Answer. " * int(rng.integers(1, 40)))
             for i, n in enumerate(names)]
    battle = battle_create(voter=voter, slots=slots, prompt_text=f"prompt {rng.integers(10**9)}",
                           category=str(rng.choice(CATEGORIES)), language=str(rng.choice(LANGUAGES)),
                           anonymous=bool(rng.random() < 0.8))
    if k == 2:
        choice = VoteChoice(VoteKind.PAIRWISE, outcome=str(rng.choice(list(OUTCOME_CODE))))
    elif rng.random() < 0.5:
        choice = VoteChoice(VoteKind.BEST_OF_K, best_position=int(rng.integers(k)))
    else:
        order = [int(p) for p in rng.permutation(k)]
        groups = [[order[0]], order[1:3], order[3:]] if k > 3 else [[order[0]], order[1:]]
        choice = VoteChoice(VoteKind.RANKING, ranking=tuple(tuple(sorted(g)) for g in groups))
    vote, created = vote_record(battle_id=battle.id, voter=voter, choice=choice,
                                idempotency_key=f"key-{rng.integers(10**12)}")
    assert created
    return vote


def _pairwise_vote(voter: Voter, outcome: str, *, prompt: str) -> Vote:
    battle = battle_create(voter=voter, slots=[SlotInput(contender=m, response="y") for m in MODELS[:2]],
                           prompt_text=prompt)
    vote, _ = vote_record(battle_id=battle.id, voter=voter, choice=VoteChoice(VoteKind.PAIRWISE, outcome=outcome),
                          idempotency_key=f"key-{battle.id}")
    return vote


def _import(rng: np.random.Generator, tmp_path: Path, step: int, voter_keys: list[str]) -> None:
    rows = []
    for i in range(int(rng.integers(5, 30))):
        a, b = rng.choice(MODELS, size=2, replace=False)
        rows.append({
            "model_a": str(a), "model_b": str(b),
            "winner": str(rng.choice(["model_a", "model_b", "tie", "tie (bothbad)"])),
            # Some imported votes come from voters the site already knows (and may have flagged).
            "judge": str(rng.choice(voter_keys)) if rng.random() < 0.3 else f"judge-{rng.integers(20)}",
            "anony": bool(rng.random() < 0.9), "tstamp": 1.75e9 + step * 86400 + i,
            "language": str(rng.choice(["English", "German"])), "category_tag": str(rng.choice(["math", "story"])),
        })
    path = tmp_path / f"import-{step}.json"
    path.write_text(json.dumps(rows))
    call_command("import_battles", str(path), stdout=StringIO())


def _scan_pair_counts(config: LeaderboardConfig) -> dict[tuple[str, str, int], int]:
    rows = (selectors.counted_votes(config).filter(kind=VoteKind.PAIRWISE)
            .values_list("contender_a__name", "contender_b__name", "outcome").annotate(n=Count("id")).order_by())
    counts: Counter[tuple[str, str, int]] = Counter()
    for a, b, o, n in rows:
        counts[_in_name_order(a, b, OUTCOME_CODE[o])] += n
    return dict(counts)


def _in_name_order(a: str, b: str, outcome: int) -> tuple[str, str, int]:
    """A verdict with the models in name order (the tallies keep no positions: no fit that reads them has any)."""
    return (a, b, outcome) if a < b else (b, a, {0: 1, 1: 0}.get(outcome, outcome))


def _tally_pair_counts(config: LeaderboardConfig) -> dict[tuple[str, str, int], int]:
    pairs = selectors.pair_counts(config)
    if pairs is None:
        return {}
    counts: Counter[tuple[str, str, int]] = Counter()
    for a, b, o, w in zip(pairs.a, pairs.b, pairs.outcome, pairs.weight, strict=True):
        counts[_in_name_order(pairs.models[a], pairs.models[b], int(o))] += int(w)
    return dict(counts)


def test_tallies_equal_a_rebuild_after_a_random_mix_of_votes_imports_and_flags(models, tmp_path):
    rng = np.random.default_rng(7)
    voters = [voter_get_or_create(key=f"anon:{i}") for i in range(8)]
    flagged_votes = 0
    for step in range(70):
        action = rng.choice(["pair", "pair", "pair", "kwise", "leak", "import", "flag", "unflag", "flag_vote",
                             "fold"])
        if action == "pair":
            _site_vote(rng, voters, k=2)
        elif action == "kwise":
            _site_vote(rng, voters, k=int(rng.integers(3, 6)))
        elif action == "leak":
            _site_vote(rng, voters, k=2, leak=True)
        elif action == "import":
            _import(rng, tmp_path, step, [v.key for v in voters])
        elif action in ("flag", "unflag"):
            voter_flag_set(voter_id=voters[rng.integers(len(voters))].id, flagged=action == "flag",
                           reason="planted bot")
        elif action == "flag_vote" and Vote.objects.exists():
            vote = Vote.objects.order_by("?").first()
            if not vote.flags.filter(code=VoteFlagCode.DUPLICATE_PROMPT).exists():
                vote_flag_add(vote_id=vote.id, code=VoteFlagCode.DUPLICATE_PROMPT, reason="asked 40 times")
                flagged_votes += 1
        elif action == "fold":
            tallies_fold()
    assert Vote.objects.filter(kind=VoteKind.PAIRWISE).count() > 50 and Vote.objects.exclude(
        kind=VoteKind.PAIRWISE).exists() and Voter.objects.filter(flagged=True).exists() and flagged_votes > 0

    incremental = tally_snapshot()
    call_command("rebuild_tallies", "--check", stdout=StringIO())  # raises if they differ
    call_command("rebuild_tallies", stdout=StringIO())
    rebuilt = tally_snapshot()
    assert rebuilt == incremental
    # All-time rows count every vote once under language "" (every language) and once under its own language.
    pairwise = Vote.objects.filter(kind=VoteKind.PAIRWISE)
    assert sum(n for key, n in rebuilt["pairs_all_time"].items() if key[:2] == ("", "")) == pairwise.count()
    assert sum(n for key, n in rebuilt["pairs_all_time"].items() if key[0] == "" and key[1]) == pairwise.exclude(
        battle__language="").count() > 0
    assert any(key[3] for key in rebuilt["pairs_all_time"])  # some votes are tallied as flagged

    # What the leaderboards read from the tallies is what filtering the votes one by one gives.
    days = sorted({timezone.localdate(c) for c in Vote.objects.values_list("created", flat=True)})
    configs = [LeaderboardConfig(), LeaderboardConfig(include_named=True), LeaderboardConfig(exclude_flagged=False),
               LeaderboardConfig(category="poetry"), LeaderboardConfig(category="math", exclude_flagged=False),
               LeaderboardConfig(language="de"), LeaderboardConfig(date_from=days[0].isoformat(),
                                                                   date_to=days[0].isoformat(), include_named=True),
               LeaderboardConfig(method="pl", date_from=days[-1].isoformat())]
    for config in configs:
        assert _tally_pair_counts(config) == _scan_pair_counts(config), config
        assert selectors.counted_vote_total(config) == selectors.counted_votes(config).count(), config
    rankings = selectors.ranking_counts(LeaderboardConfig(method="pl", include_named=True, exclude_flagged=False))
    assert rankings is not None and int(rankings.weight.sum()) == Vote.objects.exclude(kind=VoteKind.PAIRWISE).count()


def test_a_pair_is_tallied_in_contender_order_whatever_the_positions(models):
    """Two wins of one model, once shown first and once second, are one tally row of two wins."""
    voter = voter_get_or_create(key="anon:positions")
    winner, loser = Contender.objects.get(name=MODELS[2]), Contender.objects.get(name=MODELS[0])
    battles_by_winner_position: dict[int, int] = {}  # the site shuffles positions: draw until both occur
    for i in range(60):
        battle = battle_create(voter=voter, slots=[SlotInput(contender=n, response="x") for n in MODELS[2::-2]],
                               prompt_text=f"which is better {i}")
        winner_at = battle.slots.get(contender=winner).position
        battles_by_winner_position.setdefault(winner_at, battle.id)
        if len(battles_by_winner_position) == 2:
            break
    for winner_at, battle_id in battles_by_winner_position.items():
        vote_record(battle_id=battle_id, voter=voter, idempotency_key=f"p{battle_id}",
                    choice=VoteChoice(VoteKind.PAIRWISE, outcome="a" if winner_at == 0 else "b"))
    positions = set(Vote.objects.values_list("contender_a_id", flat=True))
    assert positions == {winner.id, loser.id}  # the winner was shown first once and second once
    low, high = sorted((winner.id, loser.id))
    expected = {("", low, high, "a" if low == winner.id else "b"): 2}
    appended: Counter[tuple] = Counter()  # the change table is append-only: one +1 row per vote
    for r in PairTallyChange.objects.all():
        appended[(r.tag, r.contender_a_id, r.contender_b_id, r.outcome)] += r.n
    assert appended == Counter(expected)
    tallies_fold()
    assert {(r.tag, r.contender_a_id, r.contender_b_id, r.outcome): r.n for r in PairTallyAll.objects.all()} == expected
    call_command("rebuild_tallies", stdout=StringIO())
    assert {(r.tag, r.contender_a_id, r.contender_b_id, r.outcome): r.n for r in PairTallyAll.objects.all()} == expected


def test_a_kwise_vote_is_tallied_as_its_ranking_of_contenders(models):
    voter = voter_get_or_create(key="anon:ranker")
    battle = battle_create(voter=voter, slots=[SlotInput(contender=n, response="x") for n in MODELS[:4]],
                           prompt_text="rank these")
    at = dict(battle.slots.values_list("position", "contender__name"))
    choice = VoteChoice(VoteKind.RANKING, ranking=((2,), (0, 3), (1,)))
    vote_record(battle_id=battle.id, voter=voter, choice=choice, idempotency_key="r")
    rankings = selectors.ranking_counts(LeaderboardConfig(method="pl"))
    assert rankings is not None and rankings.models == tuple(sorted(MODELS[:4]))
    groups = [[rankings.models[i] for i in rankings.items[rankings.group == g]] for g in np.unique(rankings.group)]
    assert [sorted(g) for g in groups] == [[at[2]], sorted([at[0], at[3]]), [at[1]]]


def test_flagging_a_voter_moves_its_votes_out_of_the_default_count_and_back(models):
    rng = np.random.default_rng(1)
    honest, bot = voter_get_or_create(key="anon:honest"), voter_get_or_create(key="anon:bot")
    for voter, n in ((honest, 4), (bot, 6)):
        for _ in range(n):
            _pairwise_vote(voter, "a", prompt=f"p{rng.integers(10**9)}")
    default = LeaderboardConfig()
    assert selectors.counted_vote_total(default) == 10
    voter_flag_set(voter_id=bot.id, flagged=True, reason="always A")
    assert selectors.counted_vote_total(default) == 4
    assert selectors.counted_vote_total(default.with_changes(exclude_flagged=False)) == 10
    tallies_fold()
    assert selectors.counted_vote_total(default) == 4 and not PairTallyChange.objects.exists()
    voter_flag_set(voter_id=bot.id, flagged=False)
    assert selectors.counted_vote_total(default) == 10
    tallies_fold()
    assert selectors.counted_vote_total(default) == 10
    # A fold leaves no row that counts nothing (the flagged rows went to 0 and were removed).
    assert not PairTallyAll.objects.filter(flagged=True).exists()


def test_rebuild_check_names_a_tally_that_drifted_and_the_rebuild_repairs_it(models):
    voter = voter_get_or_create(key="anon:one")
    _pairwise_vote(voter, "tie", prompt="drift")
    tallies_fold()
    PairTallyAll.objects.filter(tag="").update(n=5)  # what a hand edit of the table would do
    with pytest.raises(CommandError, match=r"pairs_all_time: 1 keys differ.*stored 5, from the votes 1"):
        call_command("rebuild_tallies", "--check", stdout=StringIO())
    assert PairTallyAll.objects.get(tag="").n == 5  # --check changes nothing
    out = StringIO()
    call_command("rebuild_tallies", stdout=out)
    assert "tallies rebuilt: 1 votes" in out.getvalue()
    assert PairTallyAll.objects.get(tag="").n == 1


def test_an_import_fills_the_tallies_in_bulk(models, tmp_path):
    start = 1.76e9
    rows = [{"model_a": MODELS[i % 3], "model_b": MODELS[3], "winner": "model_a", "judge": f"j{i}", "anony": True,
             "tstamp": start + i * 3600, "language": "English", "category_tag": "math"} for i in range(48)]
    path = tmp_path / "battles.json"
    path.write_text(json.dumps(rows))
    call_command("import_battles", str(path), stdout=StringIO())
    # Grouped: 48 votes over 48 hours are one row per (day, pair) under tag "" (and as many per tag).
    zone = timezone.get_default_timezone()
    groups = {(datetime.fromtimestamp(row["tstamp"], tz=zone).date(), row["model_a"]) for row in rows}
    assert PairTallyDay.objects.filter(tag="").count() == len(groups) <= 3 * 3
    assert PairTallyDay.objects.filter(tag="math").count() == len(groups)
    assert sum(PairTallyDay.objects.filter(tag="").values_list("n", flat=True)) == 48
    assert not PairTallyChange.objects.exists()  # the import folded its changes
    first_day = datetime.fromtimestamp(start, tz=timezone.get_default_timezone()).date()
    config = LeaderboardConfig(date_from=first_day.isoformat(), date_to=first_day.isoformat())
    assert selectors.counted_vote_total(config) == selectors.counted_votes(config).count() > 0
    assert selectors.counted_vote_total(LeaderboardConfig(category="math")) == 48
    before = tally_snapshot()
    call_command("rebuild_tallies", stdout=StringIO())
    assert tally_snapshot() == before


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_votes_racing_with_the_flagging_of_their_voter_are_counted_once_under_the_right_flag():
    for name in MODELS[:3]:
        Contender.objects.create(name=name)
    voter = voter_get_or_create(key="anon:racer")
    battles = [battle_create(voter=voter, slots=[SlotInput(contender=m, response="r") for m in MODELS[:2]],
                             prompt_text=f"race {i}") for i in range(30)]
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def vote(chunk: list) -> None:
        start.wait()
        try:
            for battle in chunk:
                vote_record(battle_id=battle.id, voter=voter, choice=VoteChoice(VoteKind.PAIRWISE, outcome="b"),
                            idempotency_key=f"race-{battle.id}")
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    def flag_and_unflag() -> None:
        start.wait()
        try:
            for i in range(6):
                voter_flag_set(voter_id=voter.id, flagged=i % 2 == 0, reason="racing")
                tallies_fold()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=vote, args=(battles[i::3],)) for i in range(3)]
    threads.append(threading.Thread(target=flag_and_unflag))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert Vote.objects.count() == 30
    incremental = tally_snapshot()
    call_command("rebuild_tallies", stdout=StringIO())
    assert tally_snapshot() == incremental
    # The last flagging left the voter unflagged: every vote counts.
    assert selectors.counted_vote_total(LeaderboardConfig()) == 30


def test_tally_days_follow_the_site_time_zone(models, settings):
    voter = voter_get_or_create(key="anon:late")
    vote = _pairwise_vote(voter, "a", prompt="late")
    day = timezone.localdate(vote.created, timezone.get_default_timezone())
    config = LeaderboardConfig(date_from=day.isoformat(), date_to=day.isoformat())
    assert selectors.counted_vote_total(config) == 1
    assert selectors.counted_vote_total(config.with_changes(date_from=(day + timedelta(days=1)).isoformat(),
                                                            date_to=(day + timedelta(days=1)).isoformat())) == 0
