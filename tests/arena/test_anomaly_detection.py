"""Moderation on the database: planted anomalous voters among honest ones (alone, behind one address, hiding among
honest votes), duplicate typed prompts, the task."""
from __future__ import annotations

from datetime import datetime, timedelta
from io import StringIO
from itertools import count

import numpy as np
import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.utils import timezone

from arena.models import (
    AnomalyAddress,
    Battle,
    BattleSlot,
    BattleStatus,
    Contender,
    PromptSource,
    Vote,
    VoteFlag,
    VoteFlagCode,
    VoteKind,
    Voter,
)
from arena.moderation import (
    models_check_drift,
    prompts_flag_duplicates,
    voter_flag_set,
    voters_flag_anomalous,
)
from arena.services import SlotInput, battle_create, vote_record, voter_get_or_create
from arena.tasks import moderation_run_soon, moderation_run_task
from arena.verdicts import VoteChoice
from benchmarks.anomaly_simulation import OUTCOMES, SimVoter, simulate_arena

pytestmark = pytest.mark.django_db

KINDS = ("honest", "random", "always_a")
_keys = count()


@pytest.fixture
def models8(db) -> list[Contender]:
    return Contender.objects.bulk_create(Contender(name=f"model-{i}") for i in range(8))


def _battle(voter: Voter, contenders: list[Contender], created: datetime, **fields) -> tuple[Battle, list[BattleSlot]]:
    battle = Battle(k=len(contenders), voter=voter, created=created, status=BattleStatus.VOTED, revealed_at=created,
                    **fields)
    return battle, [BattleSlot(battle=battle, position=p, contender=c, response="...") for p, c in
                    enumerate(contenders)]


def _store(battles: list[Battle], slots: list[BattleSlot], votes: list[Vote]) -> None:
    """Bulk rows that the services would write: voted battles, their slots, then one vote each."""
    Battle.objects.bulk_create(battles, batch_size=2000)
    BattleSlot.objects.bulk_create(slots, batch_size=4000)
    Vote.objects.bulk_create(votes, batch_size=2000)


def _pairwise_arena(models: list[Contender], counts: dict[str, int], votes_per_voter: int, seed: int,
                    ) -> dict[int, str]:
    """Voters of each kind voting from Bradley-Terry-Davidson truth; returns voter id -> kind."""
    rng = np.random.default_rng(seed)
    simulated = simulate_arena(counts, votes_per_voter, np.linspace(-3, 3, len(models)), rng)
    voters = Voter.objects.bulk_create(Voter(key=f"anon:sim-{i}") for i in range(len(simulated)))
    start = timezone.now() - timedelta(days=2)
    battles, slots, votes = [], [], []
    for v, (voter, sim) in enumerate(zip(voters, simulated, strict=True)):
        for i, (a, b, o) in enumerate(zip(sim.a, sim.b, sim.outcome, strict=True)):
            created = start + timedelta(seconds=60 * i, microseconds=v)
            battle, battle_slots = _battle(voter, [models[a], models[b]], created)
            battles.append(battle)
            slots.extend(battle_slots)
            votes.append(Vote(battle=battle, voter=voter, created=created, kind=VoteKind.PAIRWISE,
                              outcome=OUTCOMES[int(o)], contender_a=models[a], contender_b=models[b],
                              fingerprint=f"sim:{battle.id}"))
    _store(battles, slots, votes)
    return {voter.id: sim.kind for voter, sim in zip(voters, simulated, strict=True)}


def test_planted_random_and_always_a_voters_are_flagged_and_honest_ones_are_not(models8):
    kinds = _pairwise_arena(models8, {"honest": 48, "random": 6, "always_a": 6}, votes_per_voter=60, seed=5)
    n_votes = Vote.objects.count()
    out = StringIO()
    call_command("detect_anomalous_voters", stdout=out)

    flagged = dict(Voter.objects.filter(id__in=kinds).values_list("id", "flagged"))
    rate = {kind: np.mean([flagged[v] for v, k in kinds.items() if k == kind]) for kind in KINDS}
    assert rate["random"] >= 4 / 6, rate
    assert rate["always_a"] >= 5 / 6, rate
    assert rate["honest"] <= 2 / 48, rate
    # flagged, never deleted; the reason names the test, the checkpoint and the combined p-value
    assert Vote.objects.count() == n_votes == 60 * 60
    for voter in Voter.objects.filter(flagged=True):
        assert voter.votes.count() == 60
        assert "Fisher combination test" in voter.flag_reason and "after " in voter.flag_reason
        assert "combined p = " in voter.flag_reason
        assert voter.key in out.getvalue()
    assert "60 voters tested" in out.getvalue()

    # Each checkpoint is decided once: a second run on the same votes reaches no new checkpoint, tests
    # nobody again and flags nobody more (re-testing as the history grows would inflate false flags).
    honest = [v for v, k in kinds.items() if k == "honest" and not flagged[v]]
    assert set(Voter.objects.filter(id__in=honest).values_list("anomaly_decided_through", flat=True)) <= {20, 50}
    before = set(Voter.objects.filter(flagged=True).values_list("id", flat=True))
    call_command("detect_anomalous_voters", "--no-duplicates", stdout=StringIO())
    assert set(Voter.objects.filter(flagged=True).values_list("id", flat=True)) == before


def test_a_dry_run_writes_nothing_and_a_flagged_voter_keeps_its_first_reason(models8, django_assert_max_num_queries):
    kinds = _pairwise_arena(models8, {"honest": 30, "always_a": 4}, votes_per_voter=50, seed=6)
    always_a = [v for v, k in kinds.items() if k == "always_a"]
    voter_flag_set(voter_id=always_a[0], flagged=True, reason="staff: clicks A without reading")

    # savepoint, "any K-wise votes?", the pair history's GROUP BY, the flagged count, the decided checkpoints of
    # voters and of addresses, the voters' votes, the shared addresses' votes (none here), release
    with django_assert_max_num_queries(9):
        report = voters_flag_anomalous(alpha=0.01, checkpoints=(5, 10, 20, 50), min_pair_history=20, dry_run=True)
    assert report.dry_run and report.already_flagged == 1 and report.voters_tested == 33
    assert {f.voter_id for f in report.flagged} >= set(always_a[1:])
    assert Voter.objects.filter(flagged=True).count() == 1

    call_command("detect_anomalous_voters", "--checkpoints", "5,10,20,50", "--no-duplicates", stdout=StringIO())
    assert Voter.objects.get(id=always_a[0]).flag_reason == "staff: clicks A without reading"
    assert set(Voter.objects.filter(flagged=True).values_list("id", flat=True)) >= set(always_a)


def test_kwise_votes_are_tested_one_random_pair_each(db):
    """Honest best-of-3 and ranking votes from Plackett-Luce truth; 'always the first answer' voters stand out."""
    rng = np.random.default_rng(8)
    models = Contender.objects.bulk_create(Contender(name=f"kwise-{i}") for i in range(5))
    theta = np.linspace(-2.5, 2.5, 5)
    voters = Voter.objects.bulk_create(Voter(key=f"anon:k-{i}") for i in range(34))
    lazy = voters[30:]
    start = timezone.now() - timedelta(days=1)
    battles, slots, votes = [], [], []
    for v, voter in enumerate(voters):
        for i in range(60):
            shown = rng.choice(5, size=3, replace=False)
            created = start + timedelta(seconds=60 * i, microseconds=v)
            battle, battle_slots = _battle(voter, [models[m] for m in shown], created)
            weights = np.exp(theta[shown])
            order = [int(p) for p in rng.choice(3, size=3, replace=False, p=weights / weights.sum())]  # Plackett-Luce
            if voter in lazy:
                fields = {"kind": VoteKind.BEST_OF_K, "best_position": 0}
            elif i % 2:
                fields = {"kind": VoteKind.BEST_OF_K, "best_position": order[0]}
            else:
                fields = {"kind": VoteKind.RANKING, "ranking": [[p] for p in order]}
            battles.append(battle)
            slots.extend(battle_slots)
            votes.append(Vote(battle=battle, voter=voter, created=created, fingerprint=f"k:{battle.id}", **fields))
    _store(battles, slots, votes)

    report = voters_flag_anomalous(alpha=0.01, checkpoints=(5, 10, 20, 50), min_pair_history=20)
    flagged = {f.voter_id for f in report.flagged}
    assert report.voters_tested == 34
    assert len(flagged & {v.id for v in lazy}) >= 3
    assert len(flagged - {v.id for v in lazy}) <= 1


def _voters_with_votes(models: list[Contender], sims: list, addresses: list[str], *, prefix: str,
                       start: datetime, spacing: timedelta) -> list[Voter]:
    """Voters (with these ``Voter.ip_hash`` values) casting the simulated votes ``sims``, one after the other."""
    voters = Voter.objects.bulk_create(Voter(key=f"anon:{prefix}-{i}", ip_hash=address)
                                       for i, address in enumerate(addresses))
    battles, slots, votes = [], [], []
    t = start
    for voter, sim in zip(voters, sims, strict=True):
        for a, b, o in zip(sim.a, sim.b, sim.outcome, strict=True):
            t += spacing
            battle, battle_slots = _battle(voter, [models[a], models[b]], t)
            battles.append(battle)
            slots.extend(battle_slots)
            votes.append(Vote(battle=battle, voter=voter, created=t, kind=VoteKind.PAIRWISE,
                              outcome=OUTCOMES[int(o)], contender_a=models[a], contender_b=models[b],
                              fingerprint=f"sim:{battle.id}"))
    _store(battles, slots, votes)
    return voters


def _for_the_target(n: int, target: int, rng: np.random.Generator, *, m: int = 8) -> SimVoter:
    """``n`` votes on battles showing ``target`` against a random other model, in random positions, for the target."""
    other = (target + rng.integers(1, m, n)) % m
    target_first = rng.random(n) < 0.5
    a, b = np.where(target_first, target, other), np.where(target_first, other, target)
    return SimVoter("attack", a, b, np.where(target_first, 0, 1))


def test_sybils_behind_one_address_are_flagged_together_and_honest_voters_behind_a_nat_are_not(models8):
    """40 cookies of 4 votes each for model-3 from one address; 12 honest voters behind one shared address."""
    rng = np.random.default_rng(31)
    honest = simulate_arena({"honest": 60}, 60, np.linspace(-3, 3, 8), rng)
    addresses = ["nat" if i < 12 else f"home-{i}" for i in range(60)]
    start = timezone.now() - timedelta(days=2)
    honest_voters = _voters_with_votes(models8, honest, addresses, prefix="h", start=start,
                                       spacing=timedelta(seconds=20))
    sybils = _voters_with_votes(models8, [_for_the_target(4, 3, rng) for _ in range(40)], ["bot"] * 40,
                                prefix="s", start=start + timedelta(hours=1), spacing=timedelta(seconds=30))

    alone = voters_flag_anomalous(alpha=0.01, checkpoints=(5, 10, 20, 50, 100), min_pair_history=20,
                                  by_address=False, dry_run=True)
    assert not {f.voter_id for f in alone.flagged} & {v.id for v in sybils}   # 4 votes each: never tested
    assert alone.addresses_tested == 0

    out = StringIO()
    call_command("detect_anomalous_voters", "--no-duplicates", stdout=out)
    assert set(Voter.objects.filter(key__startswith="anon:s-").values_list("flagged", flat=True)) == {True}
    reason = Voter.objects.get(key="anon:s-0").flag_reason
    assert "the 40 voters sharing this voter's address" in reason and "after " in reason
    # the NAT passed as an identity (a voter behind it may still fail its own test, as any honest voter may)
    nat = Voter.objects.filter(id__in=[v.id for v in honest_voters[:12]])
    assert not nat.filter(flag_reason__contains="sharing this voter's address").exists()
    assert Voter.objects.filter(key__startswith="anon:h-", flagged=True).count() <= 2
    assert "2 shared addresses tested, 1 failed" in out.getvalue() and "anon:s-39" in out.getvalue()

    # A second run decides nothing again: the NAT's checkpoints are remembered (its 720 votes reached the per-model
    # test's 500), no honest voter is added.
    assert AnomalyAddress.objects.get(ip_hash="nat").anomaly_decided_through == 500
    before = set(Voter.objects.filter(flagged=True).values_list("id", flat=True))
    again = voters_flag_anomalous(alpha=0.01, checkpoints=(5, 10, 20, 50, 100), min_pair_history=20)
    assert again.flagged == [] and set(Voter.objects.filter(flagged=True).values_list("id", flat=True)) == before


def test_a_voter_hiding_its_votes_for_one_model_among_honest_ones_is_found_by_the_per_model_test(models8):
    """600 votes, honest except on the battles that show model-5, which it always gives to model-5."""
    rng = np.random.default_rng(32)
    theta = np.linspace(-1.5, 1.5, 8)
    honest = simulate_arena({"honest": 50}, 60, theta, rng)
    sly = simulate_arena({"honest": 1}, 600, theta, rng)[0]
    shows = (sly.a == 5) | (sly.b == 5)
    sly.outcome[shows] = np.where(sly.a[shows] == 5, 0, 1)
    start = timezone.now() - timedelta(days=2)
    _voters_with_votes(models8, honest, [f"home-{i}" for i in range(50)], prefix="h", start=start,
                       spacing=timedelta(seconds=20))
    (cover,) = _voters_with_votes(models8, [sly], ["sly"], prefix="sly", start=start, spacing=timedelta(seconds=7))

    without = voters_flag_anomalous(alpha=0.01, checkpoints=(5, 10, 20, 50, 100), min_pair_history=20,
                                    model_checkpoints=(), dry_run=True)
    assert cover.id not in {f.voter_id for f in without.flagged}      # its first 100 votes look ordinary enough
    out = StringIO()
    call_command("detect_anomalous_voters", "--no-duplicates", "--model-checkpoints", "none", "--dry-run",
                 "--no-by-address", stdout=out)
    assert "no per-model test" in out.getvalue() and "anon:sly-0" not in out.getvalue()
    call_command("detect_anomalous_voters", "--no-duplicates", stdout=StringIO())
    cover.refresh_from_db()
    assert cover.flagged and "per-model test" in cover.flag_reason
    assert "showing model-5 went for it" in cover.flag_reason
    assert Voter.objects.filter(key__startswith="anon:h-", flagged=True).count() <= 2


def test_a_botnet_burst_for_one_model_is_reported_by_the_drift_check_and_steady_days_are_not(models8):
    """Ten days of honest votes; on the last, 200 cookies from 200 addresses cast one vote each for model-3."""
    rng = np.random.default_rng(33)
    theta = np.linspace(-1.5, 1.5, 8)
    today = timezone.now().date()
    midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    for day in range(10):
        sims = simulate_arena({"honest": 40}, 15, theta, rng)
        _voters_with_votes(models8, sims, [f"d{day}-{i}" for i in range(40)], prefix=f"h{day}",
                           start=midnight - timedelta(days=9 - day), spacing=timedelta(seconds=30))
    steady = models_check_drift(days=10, today=today)
    assert steady.votes_read == 10 * 40 * 15 and steady.findings == []

    _voters_with_votes(models8, [_for_the_target(1, 3, rng) for _ in range(200)], [f"bot-{i}" for i in range(200)],
                       prefix="bot", start=midnight, spacing=timedelta(seconds=1))
    out = StringIO()
    call_command("detect_anomalous_voters", "--no-duplicates", "--drift", stdout=out)
    assert not Voter.objects.filter(key__startswith="anon:bot-", flagged=True).exists()   # one vote each: unseen
    text = out.getvalue()
    assert "model drift (last 10 days" in text and "report only, nothing held" in text
    assert f"model-3: better than before on {today}..{today}" in text
    found = models_check_drift(days=10, today=today).findings
    assert [f.name for f in found if f.z > 0] == ["model-3"]
    assert not Vote.objects.filter(flags__isnull=False).exists()                      # it wrote nothing


@pytest.mark.parametrize(("options", "message"), [
    (["--checkpoints", "10,5"], "--checkpoints: checkpoints must be strictly increasing"),
    (["--checkpoints", "5,ten"], "--checkpoints: expected comma-separated integers"),
    (["--checkpoints", ""], "--checkpoints: give at least one checkpoint"),
    (["--alpha", "1.5"], "--alpha: must be between 0 and 1"),
    (["--min-pair-history", "-1"], "--min-pair-history: must be 0 or more"),
    (["--keep", "-2"], "--keep: must be 0 or more"),
    (["--percentile", "120"], "--percentile: must be between 0 and 100"),
    (["--model-checkpoints", "50,20"], "--model-checkpoints: checkpoints must be strictly increasing"),
    (["--model-checkpoints", ","], "--model-checkpoints: give at least one checkpoint, or 'none'"),
    (["--model-alpha", "0"], "--model-alpha: must be between 0 and 1"),
    (["--min-model-votes", "0"], "--min-model-votes: must be 1 or more"),
    (["--drift", "--drift-days", "1"], "--drift-days: must be 2 or more"),
    (["--drift", "--drift-alpha", "2"], "--drift-alpha: must be between 0 and 1"),
])
def test_bad_options_are_clear_command_errors(db, options, message):
    with pytest.raises(CommandError, match=message):
        call_command("detect_anomalous_voters", *options, stdout=StringIO())


# ------------------------------------------------------------------------------ duplicate prompts


def _ask(voter: Voter, prompt: str, source: str, n: int) -> list[Vote]:
    """``n`` battles on ``prompt`` through the services, each voted 'a'."""
    out = []
    for _ in range(n):
        battle = battle_create(voter=voter, prompt_text=prompt, prompt_source=source,
                               slots=[SlotInput(contender="model-0", response="one answer"),
                                      SlotInput(contender="model-1", response="another answer")])
        vote, _ = vote_record(battle_id=battle.id, voter=voter, choice=VoteChoice(VoteKind.PAIRWISE, outcome="a"),
                              idempotency_key=f"key-{next(_keys)}")
        out.append(vote)
    return out


def test_an_over_asked_typed_prompt_keeps_its_first_votes_and_sampled_prompts_never_count(models8):
    voters = [voter_get_or_create(key=f"anon:dup-{i}") for i in range(5)]
    spam = []
    for i in range(30):   # one prompt typed 30 times, by a few visitors
        spam += _ask(voters[i % 5], "hi", PromptSource.TYPED, 1)
    for i in range(60):   # 60 other prompts typed once or twice
        _ask(voters[i % 5], f"question number {i}", PromptSource.TYPED, 1 + i % 2)
    sampled = _ask(voters[0], "a pool prompt the arena serves often", PromptSource.SAMPLED, 30)

    out = StringIO()
    call_command("detect_anomalous_voters", "--keep", "3", stdout=out)   # percentile 99.9, min count 10

    flagged = set(VoteFlag.objects.filter(code=VoteFlagCode.DUPLICATE_PROMPT).values_list("vote_id", flat=True))
    assert flagged == {v.id for v in spam[3:]}          # the first 3 (by time) stay rated
    assert not flagged & {v.id for v in sampled}
    reason = VoteFlag.objects.filter(code=VoteFlagCode.DUPLICATE_PROMPT).first().reason
    assert "30 typed battles" in reason and "99.9th percentile" in reason and "first 3 votes" in reason
    assert "27 votes" in out.getvalue()
    assert Vote.objects.count() == 30 + 90 + 30

    again = prompts_flag_duplicates(percentile=99.9, min_count=10, keep=3)
    assert again.votes_flagged == 0 and [d.newly_flagged for d in again.duplicates] == [0]
    assert VoteFlag.objects.filter(code=VoteFlagCode.DUPLICATE_PROMPT).count() == 27


def test_a_prompt_below_the_minimum_count_is_not_a_duplicate(models8):
    voter = voter_get_or_create(key="anon:few")
    _ask(voter, "asked four times", PromptSource.TYPED, 4)
    _ask(voter, "asked once", PromptSource.TYPED, 1)
    report = prompts_flag_duplicates(percentile=50, min_count=5, keep=1)
    assert report.prompts_counted == 2 and report.duplicates == [] and not VoteFlag.objects.exists()
    report = prompts_flag_duplicates(percentile=50, min_count=4, keep=1, dry_run=True)
    assert [(d.votes, d.newly_flagged) for d in report.duplicates] == [(4, 3)] and not VoteFlag.objects.exists()


# ------------------------------------------------------------------------------ the periodic task


def test_votes_enqueue_one_moderation_run_per_window(db):
    from django_tasks_db.models import DBTaskResult

    cache.clear()
    assert moderation_run_soon() is True
    assert moderation_run_soon() is False
    assert DBTaskResult.objects.filter(task_path__endswith="moderation_run_task").count() == 1


def test_the_moderation_task_runs_both_services(models8):
    _pairwise_arena(models8, {"honest": 20, "always_a": 2}, votes_per_voter=50, seed=9)
    summary = moderation_run_task.call()
    assert summary["voters_tested"] == 22 and len(summary["voters_flagged"]) >= 1
    assert summary["duplicate_prompts"] == [] and summary["votes_flagged_duplicate"] == 0
