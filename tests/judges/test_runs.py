"""Judge runs through the command line and the API: both orders, caching, resuming, accounting, audits."""
from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from arena.models import BattleSlot
from judges.models import Audit, Judge, JudgeRun, Judgment, RunJudgment, RunStatus, Verdict
from judges.services import judge_create, judge_run_create, judge_run_execute, run_filters_from

pytestmark = pytest.mark.django_db(transaction=False)


def _run_command(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("judge_run", *args, stdout=out)
    return out.getvalue()


def _answers_shown(messages: list[dict]) -> list[str]:
    """The answers in the order the judge saw them (A first)."""
    user = messages[-1]["content"]
    return re.findall(r"\[The Start of Assistant [A-F]'s Answer\]\n(.*?)\n\[The End of", user, re.S)


def _prefers_longer(messages: list[dict]) -> str:
    first, second = _answers_shown(messages)
    return "The longer answer is better. " + ("[[A]]" if len(first) >= len(second) else "[[B]]")


@pytest.fixture
def scripted_judge(db) -> Judge:
    return judge_create(name="scripted-fair", backend="scripted", family="gamma", config={"noise": 1.0}, seed=0)


def test_a_run_judges_every_battle_in_both_orders_and_is_audited(voted_battles, scripted_judge):
    battles = voted_battles(6)
    out = _run_command("--judge", "scripted-fair", "--replicates", "2", "--perturbation", "authority",
                       "--bootstrap", "50")
    run = JudgeRun.objects.get()
    assert run.status == RunStatus.SUCCEEDED
    assert run.n_total == run.n_done == 6 * (2 * 2 + 2 * 1)
    judgments = Judgment.objects.filter(run_items__run=run)
    for battle in battles:
        mine = judgments.filter(battle=battle)
        assert sorted(mine.filter(perturbation="").values_list("order", "replicate")) == [
            ("01", 0), ("01", 1), ("10", 0), ("10", 1)]
        assert sorted(mine.filter(perturbation="authority").values_list("order", flat=True)) == ["01", "10"]
    audit = Audit.objects.get(run=run)
    assert f"audit {audit.pk}" in out
    report = audit.report["judges"]["scripted-fair"]
    assert report["n"] == audit.n_judgments == run.n_total
    assert report["position"]["consistency"]["n"] == 6 * 2   # one pair per battle and replicate
    assert set(report["perturbations"]) == {"authority"}


def test_a_repeated_run_reuses_every_cached_judgment(voted_battles, scripted_judge):
    voted_battles(4)
    _run_command("--judge", "scripted-fair", "--no-audit")
    made = Judgment.objects.count()
    first = JudgeRun.objects.get()
    _run_command("--judge", "scripted-fair", "--no-audit")
    second = JudgeRun.objects.exclude(pk=first.pk).get()
    assert Judgment.objects.count() == made == 8
    assert second.status == RunStatus.SUCCEEDED
    assert second.n_cached == second.n_done == second.n_total == 8
    assert second.completion_tokens == 0   # nothing was spent on the second run
    assert set(RunJudgment.objects.filter(run=second).values_list("judgment_id", flat=True)) == set(
        RunJudgment.objects.filter(run=first).values_list("judgment_id", flat=True))


def test_the_cache_key_changes_with_the_sampling_parameters(voted_battles, scripted_judge):
    voted_battles(2)
    _run_command("--judge", "scripted-fair", "--no-audit")
    Judge.objects.filter(pk=scripted_judge.pk).update(temperature=0.7)
    _run_command("--judge", "scripted-fair", "--no-audit")
    assert Judgment.objects.count() == 8
    assert JudgeRun.objects.order_by("pk").last().n_cached == 0


def test_an_openai_judge_sees_both_orders_and_its_verdicts_map_back_to_the_battle(
        voted_battles, openai_server, db):
    openai_server.script("judge-model", respond=_prefers_longer)
    judge_create(name="gpt-judge", backend="openai", config={"base_url": openai_server.base_url,
                                                                     "model": "judge-model"},
                         prompt_price_per_mtok=2.0, completion_price_per_mtok=8.0)
    battles = voted_battles(3)
    _run_command("--judge", "gpt-judge", "--bootstrap", "20")
    requests = openai_server.chat_requests("judge-model")
    assert len(requests) == 6
    shown = {tuple(_answers_shown(r.body["messages"])) for r in requests}
    assert len(shown) == 2 and {s[::-1] for s in shown} == shown   # each battle in one order, then the other
    run = JudgeRun.objects.get()
    for battle in battles:
        longer = max(BattleSlot.objects.filter(battle=battle), key=lambda s: len(s.response)).position
        verdicts = set(Judgment.objects.filter(battle=battle).values_list("verdict", flat=True))
        assert verdicts == {"ab"[longer]}   # the same model wins in both orders: a consistent judge
    tokens_in = sum(sum(len(m["content"].split()) for m in r.body["messages"]) for r in requests)
    tokens_out = 6 * len(["The", "longer", "answer", "is", "better.", "[[A]]"])
    assert (run.prompt_tokens, run.completion_tokens) == (tokens_in, tokens_out)
    assert run.cost == (Decimal(tokens_in) * 2 + Decimal(tokens_out) * 8) / Decimal(10**6)
    report = Audit.objects.get(run=run).report["judges"]["gpt-judge"]
    assert report["position"]["consistency"]["value"] == 1.0
    assert report["length"]["prefer_longer"]["value"] == 1.0


def test_a_judge_that_always_picks_the_first_answer_is_inconsistent_not_tied(voted_battles, openai_server, db):
    openai_server.script("first-picker", text="Assistant A. [[A]]")
    judge_create(name="first-picker", backend="openai",
                 config={"base_url": openai_server.base_url, "model": "first-picker"})
    voted_battles(4)
    _run_command("--judge", "first-picker", "--bootstrap", "20")
    verdicts = dict(Judgment.objects.values_list("order", "verdict").distinct())
    assert verdicts == {"01": Verdict.A, "10": Verdict.B}
    report = Audit.objects.get().report["judges"]["first-picker"]
    assert report["position"]["consistency"]["value"] == 0.0
    assert report["position"]["first_position_rate"]["value"] == 1.0
    assert report["position"]["conflict_rate"]["value"] == 1.0
    # Inconsistent is its own verdict: no pair lands on the "tie" row, and every pair is a miss.
    assert report["agreement"]["matrix"]["counts"][2] == [0, 0, 0]
    assert sum(report["agreement"]["matrix"]["counts"][3]) == 4
    assert report["agreement"]["inconsistent_rate"]["value"] == 1.0
    assert report["agreement"]["accuracy_with_ties"]["value"] == 0.0


def test_unparseable_answers_are_kept_raw_and_fail_closed(voted_battles, openai_server, db):
    openai_server.script("waffler", text="Both have merits. [[A]] but also [[B]]")
    judge_create(name="waffler", backend="openai", config={"base_url": openai_server.base_url, "model": "waffler"})
    voted_battles(2)
    _run_command("--judge", "waffler", "--bootstrap", "20")
    assert set(Judgment.objects.values_list("verdict", flat=True)) == {Verdict.UNPARSED}
    assert set(Judgment.objects.values_list("raw_text", flat=True)) == {"Both have merits. [[A]] but also [[B]]"}
    assert Audit.objects.get().report["judges"]["waffler"]["unparsed_rate"]["value"] == 1.0


def test_a_failing_endpoint_fails_the_run_and_a_resume_makes_only_the_missing_calls(
        voted_battles, openai_server, db):
    openai_server.script("flaky", status=503)
    judge_create(name="flaky", backend="openai",
                 config={"base_url": openai_server.base_url, "model": "flaky", "max_retries": 1, "timeout_s": 5})
    voted_battles(2)
    with pytest.raises(CommandError, match="resume with --resume"):
        _run_command("--judge", "flaky")
    run = JudgeRun.objects.get()
    assert run.status == RunStatus.FAILED and run.n_failed == 4 and run.n_done == 0
    assert "HTTP 503" in run.error
    assert not Audit.objects.exists()   # a failed run is never audited
    assert len(openai_server.chat_requests("flaky")) == 8   # every call retried once

    openai_server.script("flaky", text="[[B]]", fail_times=1)   # one more 5xx, absorbed by the retry
    before = len(openai_server.chat_requests("flaky"))
    _run_command("--resume", str(run.pk), "--bootstrap", "20")
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.n_done == 4 and run.n_failed == 0
    assert len(openai_server.chat_requests("flaky")) - before == 5
    assert Audit.objects.filter(run=run).count() == 1


def test_a_resumed_run_does_not_repeat_calls_it_already_made(voted_battles, openai_server, db):
    openai_server.script("half", text="[[C]]")
    judge = judge_create(name="half", backend="openai", config={"base_url": openai_server.base_url, "model": "half"})
    voted_battles(3)
    run = judge_run_create(judge=judge, filters=run_filters_from({}), concurrency=1)
    calls = 0

    class Crashing:
        """Stands in for a worker that dies after two calls."""

        def complete(self, messages, params, hints):
            nonlocal calls
            calls += 1
            if calls > 2:
                from judges.backends import JudgeBackendError

                raise JudgeBackendError("worker lost")
            from judges.backends.openai import OpenAIJudge

            return OpenAIJudge(judge.config).complete(messages, params, hints)

    run = judge_run_execute(run_id=run.pk, backend=Crashing())
    assert run.status == RunStatus.FAILED and run.n_done == 2
    before = len(openai_server.chat_requests("half"))
    run = judge_run_execute(run_id=run.pk)
    assert run.status == RunStatus.SUCCEEDED and run.n_done == 6
    assert len(openai_server.chat_requests("half")) - before == 4


def test_k_wise_battles_are_ranked_and_expanded_to_pairs_for_the_audit(voted_battles, scripted_judge):
    voted_battles(3, k=3)
    _run_command("--judge", "scripted-fair", "--bootstrap", "20")
    judgments = Judgment.objects.all()
    assert sorted(set(judgments.values_list("order", flat=True))) == ["012", "210"]
    assert all(j.verdict == Verdict.RANKING and sorted(p for g in j.ranking for p in g) == [0, 1, 2]
               for j in judgments)
    audit = Audit.objects.get()
    assert audit.n_judgments == 6 * 3   # three answer pairs per judgment
    from judges.selectors import audit_records

    records = list(audit_records(audit.run))
    # The pairs of one ranking share the battle as their resampling cluster.
    assert {r["cluster"] for r in records} == {str(b) for b in Judgment.objects.values_list("battle_id", flat=True)}
    assert all(r["battle_id"].startswith(r["cluster"] + "/") for r in records)
    report = audit.report["judges"]["scripted-fair"]
    assert report["agreement"]["accuracy"]["n"] > 0   # the human ranking gives every pair a verdict


def test_a_transformers_judge_runs_on_a_local_model(voted_battles, tiny_causal_lm, db):
    judge_create(name="tiny-judge", backend="transformers", config={"path": str(tiny_causal_lm)}, max_tokens=8)
    voted_battles(1)
    _run_command("--judge", "tiny-judge", "--bootstrap", "10")
    judgments = list(Judgment.objects.all())
    assert len(judgments) == 2
    assert all(j.raw_text and j.completion_tokens and j.prompt_tokens for j in judgments)
    assert all(j.verdict in {"a", "b", "tie", "unparsed"} for j in judgments)   # a random model: likely unparsed


def test_the_command_names_what_is_wrong(voted_battles, scripted_judge):
    with pytest.raises(CommandError, match="no judge called 'nobody'"):
        _run_command("--judge", "nobody")
    with pytest.raises(CommandError, match="no voted battle"):
        _run_command("--judge", "scripted-fair")
    voted_battles(1)
    with pytest.raises(CommandError, match="date_from"):
        _run_command("--judge", "scripted-fair", "--date-from", "2026-13-01")
    assert not JudgeRun.objects.exists()


def test_only_battles_matching_the_filters_are_judged(voted_battles, scripted_judge):
    voted_battles(2, category="coding")
    writing = voted_battles(3, category="writing")
    _run_command("--judge", "scripted-fair", "--category", "writing", "--limit", "2", "--no-audit")
    run = JudgeRun.objects.get()
    assert len(run.battle_ids) == 2
    assert set(run.battle_ids) <= {str(b.id) for b in writing}


def test_the_corrected_ranking_is_compared_with_the_arenas_leaderboard_when_it_has_one(voted_battles, scripted_judge):
    from leaderboard.models import Snapshot

    voted_battles(6, outcome="a")
    voted_battles(6, outcome="b")
    _run_command("--judge", "scripted-fair", "--bootstrap", "20")
    first = Audit.objects.get()
    assert first.params["human_ranking"] == "human votes of the same battles"

    call_command("refit_leaderboard", stdout=open("/dev/null", "w"))  # noqa: SIM115
    snapshot = Snapshot.objects.get()
    rated = dict(snapshot.rows.values_list("model", "rating"))
    _run_command("--judge", "scripted-fair", "--bootstrap", "20")
    second = Audit.objects.exclude(pk=first.pk).get()
    assert second.params["human_ranking"] == f"leaderboard snapshot {snapshot.pk}"
    rows = second.report["judges"]["scripted-fair"]["corrected_ranking"]
    assert {r["model"]: r["human_rating"] for r in rows} == {m: pytest.approx(rated[m]) for m in rated}
