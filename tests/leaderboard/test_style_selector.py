"""The style-control selector reads exactly the battles and counts that the ORM join over two slots read."""
from __future__ import annotations

import json
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.db.models import FilteredRelation, Q

from arena.models import BattleSlot, Voter
from arena.moderation import voter_flag_set
from arena.services import SlotInput, battle_create, voter_get_or_create
from config.errors import ValidationFailed
from leaderboard import selectors
from leaderboard.config import LeaderboardConfig
from leaderboard.ratings import STYLE_FEATURES, PairCounts, style_features

pytestmark = pytest.mark.django_db

MODELS = ["alpha-7b", "beta-13b", "gamma-70b", "delta-1b", "epsilon-3b"]
WINNERS = ["model_a", "model_b", "tie", "tie (bothbad)"]


def reference_pairs(config: LeaderboardConfig) -> PairCounts | None:
    """The selector as it was before the raw-cursor read: per-vote ORM rows through battle__slots, twice."""
    slot_a = FilteredRelation("battle__slots", condition=Q(battle__slots__position=0))
    slot_b = FilteredRelation("battle__slots", condition=Q(battle__slots__position=1))
    rows = list(
        selectors._pairwise_rows(config).annotate(slot_a=slot_a, slot_b=slot_b)
        .filter(slot_a__style_tokens__isnull=False, slot_b__style_tokens__isnull=False)
        .values_list("contender_a_id", "contender_b_id", "verdict",
                     *(f"slot_a__{c}" for c in selectors.STYLE_COLUMNS),
                     *(f"slot_b__{c}" for c in selectors.STYLE_COLUMNS))
        .order_by("created", "id")
    )
    rows = [r for r in rows if r[2] in selectors.OUTCOME_CODE and r[0] != r[1]]
    if not rows:
        return None
    names = selectors._contender_names({r[0] for r in rows} | {r[1] for r in rows})
    models = tuple(sorted(set(names.values())))
    index = {contender_id: models.index(name) for contender_id, name in names.items()}
    counts = np.array([r[3:] for r in rows], dtype=np.float64)
    features = style_features(counts[:, :4], counts[:, 4:])
    varies = np.ptp(features, axis=0) > 0
    return PairCounts(
        models=models, a=np.array([index[r[0]] for r in rows], dtype=np.int64),
        b=np.array([index[r[1]] for r in rows], dtype=np.int64),
        outcome=np.array([selectors.OUTCOME_CODE[r[2]] for r in rows], dtype=np.int8), weight=np.ones(len(rows)),
        features=features[:, varies], feature_names=tuple(n for n, k in zip(STYLE_FEATURES, varies, strict=True) if k),
    )


def _answer(rng: np.random.Generator) -> str:
    lines = [f"## Part {h}" for h in range(rng.integers(0, 3))]
    lines += [f"- item **{i}**" if rng.random() < 0.4 else f"{i + 1}. step" for i in range(rng.integers(0, 4))]
    lines.append(" ".join(["word"] * int(rng.integers(1, 40))))
    return "\n".join(rng.permutation(lines))


def _fastchat_rows(rng: np.random.Generator, n: int) -> list[dict]:
    rows = []
    for i in range(n):
        a, b = rng.choice(len(MODELS), size=2, replace=False)
        named = rng.random() < 0.15
        if named and rng.random() < 0.3:
            b = a  # a named battle of a model against itself: the import skips it
        row = {"model_a": MODELS[a], "model_b": MODELS[b], "winner": WINNERS[rng.choice(4, p=[.4, .35, .1, .15])],
               "judge": f"user-{rng.integers(0, 12)}", "anony": not named,
               # Several battles at the same second: the order between them is the votes' id order.
               "tstamp": 1.7e9 + 60 * (i // 3), "language": "German" if i % 5 == 0 else "English"}
        if i % 4 == 0:
            row["category"] = "math"
        if rng.random() < 0.85:  # the rest carry no text: no style counts, left out of style control
            question = {"role": "user", "content": f"Question {i}?"}
            row["conversation_a"] = [question, {"role": "assistant", "content": _answer(rng)}]
            row["conversation_b"] = [question, {"role": "assistant", "content": _answer(rng)}]
        rows.append(row)
    return rows


@pytest.fixture
def style_votes(tmp_path, voter_api, other_api, contenders):
    """Imported FastChat battles with and without conversations, plus site votes with aspects and a flagged voter."""
    rng = np.random.default_rng(3)
    path = tmp_path / "battles.json"
    path.write_text(json.dumps(_fastchat_rows(rng, 150)))
    call_command("import_battles", str(path), "--format", "fastchat", stdout=StringIO(), stderr=StringIO())
    for client in (voter_api, other_api):
        voter = voter_get_or_create(key=f"user:{client.user.pk}", user=client.user)
        for i in range(12):
            pair = rng.choice(len(contenders), size=2, replace=False)
            battle = battle_create(voter=voter, prompt_text=f"site prompt {i}", slots=[
                SlotInput(contender=contenders[p].name, response=_answer(rng)) for p in pair])
            outcome = str(rng.choice(["a", "b", "tie", "both_bad"]))
            body = {"outcome": outcome} | ({"aspects": {"style": str(rng.choice(["a", "b", "tie"]))}} if i % 2 else {})
            assert client.post(f"/api/v1/battles/{battle.id}/vote", body, format="json").status_code == 201
    voter_flag_set(voter_id=Voter.objects.get(key=f"user:{other_api.user.pk}").pk, flagged=True, reason="test")


def assert_same(got: PairCounts | None, want: PairCounts | None) -> None:
    assert (got is None) == (want is None)
    if want is None:
        return
    assert got.models == want.models and got.feature_names == want.feature_names
    for name in ("a", "b", "outcome", "weight", "features"):
        expected, actual = getattr(want, name), getattr(got, name)
        assert actual.dtype == expected.dtype and np.array_equal(actual, expected), name


@pytest.mark.parametrize("options", [
    {}, {"include_named": True}, {"exclude_flagged": False}, {"aspect": "style"}, {"category": "math"},
    {"language": "German"}, {"include_named": True, "exclude_flagged": False, "method": "bayes"},
    {"date_from": "2023-11-14", "date_to": "2023-11-15"},
])
def test_the_selector_returns_the_same_arrays_as_the_orm_join(style_votes, options):
    config = LeaderboardConfig(style_control=True, **options)
    want = reference_pairs(config)
    assert_same(selectors.pair_battles_with_style(config), want)
    assert 6 <= len(want.a) <= selectors.counted_votes(config).count()  # every configuration selects some


def test_the_fixture_exercises_what_the_selector_leaves_out(style_votes):
    config = LeaderboardConfig(style_control=True, include_named=True)
    pairs = selectors.pair_battles_with_style(config)
    counted = selectors.counted_votes(config).count()
    without_counts = BattleSlot.objects.filter(position=0, style_tokens__isnull=True).count()
    # Every counted vote but those without counts (the import already skipped the self-battles).
    assert without_counts > 0 and len(pairs.a) == counted - without_counts
    assert set(pairs.outcome.tolist()) == {0, 1, 2, 3} and len(pairs.feature_names) == 4


def test_no_battles_with_counts_is_none(voter_api, contenders):
    assert selectors.pair_battles_with_style(LeaderboardConfig(style_control=True)) is None


def test_style_that_never_varies_is_refused_naming_the_field(voter_api, contenders):
    voter = voter_get_or_create(key=f"user:{voter_api.user.pk}", user=voter_api.user)
    for i in range(3):
        battle = battle_create(voter=voter, prompt_text=f"p{i}", slots=[
            SlotInput(contender=c.name, response="same words") for c in contenders[:2]])
        voter_api.post(f"/api/v1/battles/{battle.id}/vote", {"outcome": "a"}, format="json")
    with pytest.raises(ValidationFailed) as error:
        selectors.pair_battles_with_style(LeaderboardConfig(style_control=True))
    assert error.value.field == "style_control"
