"""The database refuses bad states even when the services are bypassed."""
from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.db.utils import DatabaseError

from arena.models import Battle, BattleSlot, Contender, Vote, Voter

pytestmark = pytest.mark.django_db


@pytest.fixture
def voter() -> Voter:
    return Voter.objects.create(key="anon:x")


def refused(create) -> bool:
    try:
        with transaction.atomic():
            create()
    except (IntegrityError, DatabaseError):
        return True
    return False


def battle_with_slots(voter, contenders, k=2, anonymous=True) -> Battle:
    """A battle ready to take a vote row: marked voted (the database accepts votes only on those)."""
    from django.utils import timezone

    battle = Battle.objects.create(k=k, voter=voter, anonymous=anonymous, status="voted", revealed_at=timezone.now())
    for p in range(k):
        BattleSlot.objects.create(battle=battle, position=p, contender=contenders[p])
    return battle


def vote_fields(contenders, **overrides):
    """A valid pairwise vote on a battle made by battle_with_slots (contenders 0 and 1 in A and B)."""
    return {"kind": "pairwise", "outcome": "a", "fingerprint": "f:0", "contender_a": contenders[0],
            "contender_b": contenders[1], **overrides}


@pytest.mark.parametrize("k", [0, 1, 7])
def test_k_outside_2_to_6_is_refused(voter, k):
    assert refused(lambda: Battle.objects.create(k=k, voter=voter))


def test_revealed_only_when_voted(voter):
    from django.utils import timezone

    assert refused(lambda: Battle.objects.create(k=2, voter=voter, status="voted"))
    assert refused(lambda: Battle.objects.create(k=2, voter=voter, revealed_at=timezone.now()))
    assert refused(lambda: Battle.objects.create(k=2, voter=voter, status="nonsense"))


def test_slot_positions_and_contenders_are_unique_per_battle(voter, contenders):
    battle = battle_with_slots(voter, contenders)
    assert refused(lambda: BattleSlot.objects.create(battle=battle, position=0, contender=contenders[2]))
    assert refused(lambda: BattleSlot.objects.create(battle=battle, position=1, contender=contenders[0]))
    assert refused(lambda: BattleSlot.objects.create(battle=battle, position=6, contender=contenders[3]))


def test_one_vote_per_battle(voter, contenders):
    battle = battle_with_slots(voter, contenders)
    Vote.objects.create(battle=battle, voter=voter, **vote_fields(contenders))
    again = vote_fields(contenders, fingerprint="g:0")
    assert refused(lambda: Vote.objects.create(battle=battle, voter=voter, **again))


def test_idempotency_keys_and_fingerprints_are_unique(voter, contenders):
    first, second = battle_with_slots(voter, contenders), battle_with_slots(voter, contenders)
    Vote.objects.create(battle=first, voter=voter, idempotency_key="k", **vote_fields(contenders))
    assert refused(lambda: Vote.objects.create(battle=second, voter=voter, idempotency_key="k",
                                               **vote_fields(contenders, fingerprint="other:0")))
    assert refused(lambda: Vote.objects.create(battle=second, voter=voter, **vote_fields(contenders)))


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "pairwise", "outcome": None},
        {"kind": "pairwise", "outcome": "a", "best_position": 0},
        {"kind": "pairwise", "outcome": "maybe"},
        {"kind": "best_of_k", "outcome": None},
        {"kind": "best_of_k", "outcome": "a", "best_position": 1},
        {"kind": "ranking", "outcome": None},
        {"kind": "other", "outcome": "a"},
        {"kind": "pairwise", "outcome": "a", "idempotency_key": ""},
    ],
)
def test_vote_fields_must_match_the_kind(voter, contenders, fields):
    battle = battle_with_slots(voter, contenders)
    pair = {"contender_a": contenders[0], "contender_b": contenders[1]} if fields["kind"] == "pairwise" else {}
    assert refused(lambda: Vote.objects.create(battle=battle, voter=voter, fingerprint="f:0", **pair, **fields))


def test_only_pairwise_votes_carry_a_pair(voter, contenders):
    pairwise, kwise = battle_with_slots(voter, contenders), battle_with_slots(voter, contenders, k=3)
    assert refused(lambda: Vote.objects.create(battle=pairwise, voter=voter,
                                               **vote_fields(contenders, contender_b=None)))
    assert refused(lambda: Vote.objects.create(battle=kwise, voter=voter, kind="best_of_k", best_position=0,
                                               contender_a=contenders[0], contender_b=contenders[1],
                                               fingerprint="f:0"))


def test_a_flagged_voter_needs_a_reason():
    assert refused(lambda: Voter.objects.create(key="v", flagged=True))
    assert not refused(lambda: Voter.objects.create(key="w", flagged=True, flag_reason="200 votes in a minute"))


def test_contender_weights_are_not_negative():
    assert refused(lambda: Contender.objects.create(name="neg", sampling_weight=-1))


@pytest.mark.postgres
def test_postgres_refuses_a_slot_position_beyond_k(voter, contenders):
    battle = Battle.objects.create(k=2, voter=voter)
    assert refused(lambda: BattleSlot.objects.create(battle=battle, position=2, contender=contenders[0]))


@pytest.mark.postgres
def test_postgres_refuses_a_repeated_model_in_an_anonymous_battle(voter, contenders):
    anonymous = Battle.objects.create(k=2, voter=voter)
    BattleSlot.objects.create(battle=anonymous, position=0, contender=contenders[0])
    assert refused(lambda: BattleSlot.objects.create(battle=anonymous, position=1, contender=contenders[0], sample=1))
    named = Battle.objects.create(k=2, voter=voter, anonymous=False)
    BattleSlot.objects.create(battle=named, position=0, contender=contenders[0])
    assert not refused(lambda: BattleSlot.objects.create(battle=named, position=1, contender=contenders[0], sample=1))


@pytest.mark.postgres
def test_postgres_refuses_a_pairwise_vote_on_a_k3_battle(voter, contenders):
    battle = battle_with_slots(voter, contenders, k=3)
    assert refused(lambda: Vote.objects.create(battle=battle, voter=voter, **vote_fields(contenders)))
    assert refused(lambda: Vote.objects.create(battle=battle, voter=voter, kind="best_of_k", best_position=3,
                                               fingerprint="f:0"))
    assert not refused(lambda: Vote.objects.create(battle=battle, voter=voter, kind="best_of_k", best_position=2,
                                                   fingerprint="f:0"))


@pytest.mark.postgres
def test_postgres_refuses_a_ranking_vote_on_a_pairwise_battle(voter, contenders):
    battle = battle_with_slots(voter, contenders, k=2)
    assert refused(lambda: Vote.objects.create(battle=battle, voter=voter, kind="ranking", ranking=[[0], [1]],
                                               fingerprint="f:0"))


@pytest.mark.postgres
def test_postgres_refuses_a_vote_by_someone_else(voter, contenders):
    battle = battle_with_slots(voter, contenders)
    intruder = Voter.objects.create(key="anon:intruder")
    assert refused(lambda: Vote.objects.create(battle=battle, voter=intruder, **vote_fields(contenders)))


@pytest.mark.postgres
def test_postgres_refuses_a_vote_whose_copies_disagree_with_its_battle(voter, contenders):
    battle = battle_with_slots(voter, contenders)
    swapped = vote_fields(contenders, contender_a=contenders[1], contender_b=contenders[0])
    assert refused(lambda: Vote.objects.create(battle=battle, voter=voter, **swapped))
    outsider = vote_fields(contenders, contender_b=contenders[4])
    assert refused(lambda: Vote.objects.create(battle=battle, voter=voter, **outsider))
    assert refused(lambda: Vote.objects.create(battle=battle, voter=voter, anonymous=False, **vote_fields(contenders)))
    assert not refused(lambda: Vote.objects.create(battle=battle, voter=voter, **vote_fields(contenders)))


@pytest.mark.postgres
def test_postgres_refuses_a_vote_on_a_battle_not_marked_voted(voter, contenders):
    battle = battle_with_slots(voter, contenders)
    Battle.objects.filter(id=battle.id).update(status="open", revealed_at=None)
    assert refused(lambda: Vote.objects.create(battle=battle, voter=voter, **vote_fields(contenders)))


@pytest.mark.postgres
@pytest.mark.parametrize("change", [
    {"anonymous": False}, {"status": "open", "revealed_at": None}, {"k": 3}, {"voter_id": "other"},
    {"turns": 2}, {"identity_leak": "answer A says 'alpha'"}, {"prompt_source": "typed"},
    {"revealed_at": "2020-01-01T00:00:00Z"},
])
def test_postgres_freezes_a_voted_battle(voter, contenders, change):
    battle = battle_with_slots(voter, contenders)
    Vote.objects.create(battle=battle, voter=voter, **vote_fields(contenders))
    if change.get("voter_id") == "other":
        change = {"voter_id": Voter.objects.create(key="anon:other").id}
    assert refused(lambda: Battle.objects.filter(id=battle.id).update(**change))


@pytest.mark.postgres
def test_postgres_freezes_the_slots_of_a_voted_battle(voter, contenders):
    battle = battle_with_slots(voter, contenders)
    Vote.objects.create(battle=battle, voter=voter, **vote_fields(contenders))
    assert refused(lambda: BattleSlot.objects.filter(battle=battle, position=0).update(contender=contenders[3]))
    assert refused(lambda: BattleSlot.objects.filter(battle=battle).delete())
    unvoted = battle_with_slots(voter, contenders)
    assert not refused(lambda: BattleSlot.objects.filter(battle=unvoted, position=0).update(response="edited"))


@pytest.mark.parametrize(("fields", "bad"), [
    ({"status": "open", "generation": "running"}, True),                      # running needs its start time
    ({"status": "open", "generation": "running", "generation_started": "now"}, False),
    ({"status": "voted", "generation": "running", "generation_started": "now", "revealed_at": "now"}, True),
    ({"status": "open", "generation": "failed"}, True),                       # a failed source voids the battle
    ({"status": "void", "generation": "failed"}, True),                       # ... with a reason
    ({"status": "void", "generation": "failed", "void_reason": "a model failed"}, False),
    ({"status": "void", "generation": "running", "generation_started": "now", "void_reason": "x"}, True),
    ({"status": "open", "void_reason": "x"}, True),                           # a reason only on a void battle
    ({"status": "open", "turns": 0}, True),
    ({"status": "open", "prompt_source": "stolen"}, True),
    ({"status": "open", "generation": "maybe"}, True),
])
def test_live_battle_states_the_database_refuses(voter, fields, bad):
    from django.utils import timezone

    values = {name: timezone.now() if value == "now" else value for name, value in fields.items()}
    assert refused(lambda: Battle.objects.create(k=2, voter=voter, **values)) is bad
