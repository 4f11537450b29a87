"""Preference datasets through the front doors: the staff API and `manage.py build_dataset`."""
from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from itertools import count

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from arena.models import Battle, BattleSlot, Contender, Vote, VoteFlag, VoteFlagCode, VoteKind
from arena.services import SlotInput, battle_create, vote_record, voter_get_or_create
from arena.verdicts import VoteChoice
from leaderboard.config import LeaderboardConfig
from leaderboard.models import Snapshot, SnapshotRow
from trainer.models import PreferenceDataset
from trainer.services import DatasetCorrupt, dataset_build, dataset_bytes

DATASETS = "/api/v1/datasets"
NAMES = ("alpha-7b", "beta-13b", "gamma-70b", "delta-1b")
_serial = count()


@pytest.fixture
def vote(db) -> Callable[..., Vote]:
    """``vote(ranked_texts, ...)``: a battle answering ``prompt`` with one text per contender, voted so that the
    texts come out in the given order (groups of texts tie; ``[["x", "y"]]`` with K = 2 is a tie); or
    ``outcome=`` (K = 2, position A is random) or ``best=`` a text (best of K). Nothing given: outcome ``a``.

    ``answers`` maps contender to text (default: the first K contenders answer ``<name> says ...``).
    """
    for name in NAMES:
        Contender.objects.get_or_create(name=name, defaults={"organization": f"Org {name[:2]}",
                                                             "family": name.split("-")[0]})

    def make(ranked: list[list[str]] | None = None, *, answers: dict[str, str] | None = None,
             prompt: str = "Why is the sky blue?", category: str = "science", language: str = "en",
             outcome: str | None = None, best: str | None = None, anonymous: bool = True,
             days_ago: int = 0, before_vote: Callable[[Battle], None] | None = None) -> Vote:
        n = next(_serial)
        answers = answers or {name: f"answer {i} to {prompt}" for i, name in enumerate(NAMES[:2])}
        voter = voter_get_or_create(key=f"dataset-voter-{n}")
        battle = battle_create(voter=voter, slots=[SlotInput(contender=c, response=t) for c, t in answers.items()],
                               prompt_text=prompt, category=category, language=language, anonymous=anonymous)
        if before_vote is not None:
            before_vote(battle)   # the slots of a voted battle are frozen (a Postgres trigger)
        position = {s.response: s.position for s in battle.slots.all()}
        if best is not None:
            choice = VoteChoice(VoteKind.BEST_OF_K, best_position=position[best])
        elif len(answers) == 2:
            if outcome is None and ranked is None:
                outcome = "a"
            elif outcome is None:
                outcome = "tie" if len(ranked) == 1 else "ab"[position[ranked[0][0]]]
            choice = VoteChoice(VoteKind.PAIRWISE, outcome=outcome)
        else:
            assert ranked is not None
            choice = VoteChoice(VoteKind.RANKING, ranking=tuple(tuple(sorted(position[t] for t in g)) for g in ranked))
        made, _ = vote_record(battle_id=battle.id, voter=voter, choice=choice, idempotency_key=f"k{n}")
        if days_ago:
            Vote.objects.filter(pk=made.pk).update(created=timezone.now() - timedelta(days=days_ago))
        return made

    return make


def texts(n: int, prompt: str = "Why is the sky blue?") -> list[str]:
    return [f"answer {i} to {prompt}" for i in range(n)]


def build(client: APIClient, **body) -> dict:
    response = client.post(DATASETS, {"name": "ds", **body}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def records(client: APIClient, dataset_id: int, fmt: str = "jsonl") -> list[dict]:
    response = client.get(f"{DATASETS}/{dataset_id}/records", {"format": fmt})
    assert response.status_code == 200
    return [json.loads(line) for line in response.content.decode().splitlines()]


# --- who may do what --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_datasets_are_for_staff_only(vote, voter_api):
    # As for every staff endpoint here: 401 asks an anonymous client to authenticate (WWW-Authenticate: Token),
    # 403 refuses a signed-in user who is not staff.
    vote()
    dataset = dataset_build(name="made-by-staff", filters={})
    paths = [DATASETS, f"{DATASETS}/{dataset.pk}", f"{DATASETS}/{dataset.pk}/records"]
    for path in paths:
        assert APIClient().get(path).status_code == 401
        refused = voter_api.get(path)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
    assert APIClient().post(DATASETS, {"name": "x"}, format="json").status_code == 401
    assert voter_api.post(DATASETS, {"name": "x"}, format="json").status_code == 403
    assert list(PreferenceDataset.objects.values_list("name", flat=True)) == ["made-by-staff"]


@pytest.mark.django_db
def test_a_staff_build_answers_201_with_the_dataset_and_its_records(vote, staff_api):
    first, second = texts(2)
    vote([[first], [second]])
    body = build(staff_api, name="sky", filters={"category": "science"})
    assert set(body) == {"id", "name", "filters", "mode", "keep_ties", "n_records", "n_votes", "counts", "sha256",
                         "size_bytes", "created"}
    assert body["name"] == "sky" and body["mode"] == "all_pairs" and body["keep_ties"] is False
    assert body["n_records"] == 1 and body["n_votes"] == 1
    assert body["filters"] == {"category": "science", "language": "", "date_from": "", "date_to": "",
                               "contenders": [], "exclude_flagged": True, "exclude_identity_leaks": True,
                               "dedupe_prompts": True, "include_named": False}
    assert body["counts"]["matched"] == 1 and body["counts"]["votes_used"] == 1
    vote_id = Vote.objects.get().pk
    assert records(staff_api, body["id"]) == [{"prompt": "Why is the sky blue?", "chosen": first, "rejected": second,
                                              "p": 1.0, "tie": False, "vote_ids": [vote_id]}]
    assert staff_api.get(f"{DATASETS}/{body['id']}").json() == body
    assert staff_api.get(DATASETS).json() == [body]
    assert staff_api.get(f"{DATASETS}/999999").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(("body", "field"), [
    ({"name": ""}, "name"),
    ({"mode": "pairs"}, "mode"),
    ({"keep_ties": "maybe"}, "keep_ties"),
    ({"filters": {"date_from": "2026-02-30"}}, "filters"),
    ({"filters": {"colour": "blue"}}, "filters"),
    ({"filters": {"contenders": ["no-such-model"]}}, "filters.contenders"),
    ({"filters": {"date_from": "2026-03-02", "date_to": "2026-03-01"}}, "filters.date_to"),
    ({"filters": {"category": "no-such-category"}}, "filters"),
    ({"filters": {"language": "xx"}}, "filters"),
])
def test_bad_build_requests_name_the_field_and_write_nothing(vote, staff_api, body, field):
    vote()
    response = staff_api.post(DATASETS, {"name": "ds", **body}, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert not PreferenceDataset.objects.exists()


@pytest.mark.django_db
def test_a_taken_name_or_filters_that_leave_no_record_are_refused(vote, staff_api):
    vote(outcome="tie")
    empty = staff_api.post(DATASETS, {"name": "ties"}, format="json")
    assert empty.status_code == 400
    assert empty.json()["error"]["code"] == "no_records" and "filters" in empty.json()["error"]["fields"]
    assert "ties_dropped 1" in empty.json()["error"]["message"]
    build(staff_api, name="ties", keep_ties=True)
    taken = staff_api.post(DATASETS, {"name": "ties", "keep_ties": True}, format="json")
    assert taken.status_code == 400 and taken.json()["error"]["code"] == "dataset_exists"
    assert "name" in taken.json()["error"]["fields"]
    assert PreferenceDataset.objects.count() == 1


# --- frozen and hashed ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_same_votes_give_the_same_bytes_and_hash_and_only_a_matching_vote_changes_them(vote, staff_api):
    a, b = texts(2)
    vote([[a], [b]])
    vote([["q"], ["p"]], prompt="Another question?", answers={"alpha-7b": "p", "beta-13b": "q"})
    one = build(staff_api, name="one", filters={"category": "science"})
    two = build(staff_api, name="two", filters={"category": "science"})
    assert one["sha256"] == two["sha256"]
    assert staff_api.get(f"{DATASETS}/{one['id']}/records").content == \
        staff_api.get(f"{DATASETS}/{two['id']}/records").content
    vote([["x"], ["y"]], prompt="Cook rice?", category="cooking", answers={"alpha-7b": "x", "beta-13b": "y"})
    vote(outcome="a", prompt="Old sky question?", days_ago=40)
    unrelated = build(staff_api, name="after-unrelated-votes",
                      filters={"category": "science", "date_from": str(timezone.localdate() - timedelta(days=7))})
    assert unrelated["sha256"] == one["sha256"]
    vote([["m"], ["n"]], prompt="Why is grass green?", answers={"alpha-7b": "m", "beta-13b": "n"})
    grown = build(staff_api, name="grown", filters={"category": "science"})
    assert grown["sha256"] != one["sha256"] and grown["n_records"] == 4   # the old vote too: no date filter now
    for body in (one, grown):
        content = staff_api.get(f"{DATASETS}/{body['id']}/records").content
        assert hashlib.sha256(content).hexdigest() == body["sha256"] == \
            PreferenceDataset.objects.get(pk=body["id"]).sha256
        assert len(content) == body["size_bytes"]


@pytest.mark.django_db
def test_the_download_is_an_attachment_with_the_hash_as_etag(vote, staff_api):
    vote([texts(2)[:1], texts(2)[1:]])
    body = build(staff_api, name="sky questions/v1")
    response = staff_api.get(f"{DATASETS}/{body['id']}/records")
    assert response["Content-Type"] == "application/x-ndjson"
    assert response["ETag"] == f'"{body["sha256"]}"'
    assert response["Content-Disposition"] == 'attachment; filename="sky-questions-v1.jsonl"'
    again = staff_api.get(f"{DATASETS}/{body['id']}/records", HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304
    bad = staff_api.get(f"{DATASETS}/{body['id']}/records", {"format": "csv"})
    assert bad.status_code == 400 and "format" in bad.json()["error"]["fields"]


@pytest.mark.django_db
def test_stored_bytes_that_no_longer_match_the_hash_are_never_handed_out(vote, staff_api):
    vote([texts(2)[:1], texts(2)[1:]])
    dataset = dataset_build(name="ds", filters={})
    PreferenceDataset.objects.filter(pk=dataset.pk).update(content_gz=gzip.compress(b'{"tampered":true}\n'))
    with pytest.raises(DatasetCorrupt):
        dataset_bytes(PreferenceDataset.objects.get(pk=dataset.pk))
    response = staff_api.get(f"{DATASETS}/{dataset.pk}/records")
    assert response.status_code == 500 and response.json()["error"]["code"] == "dataset_corrupt"


# --- the command ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_command_writes_the_same_bytes_the_api_hands_out_and_prints_counts_and_hash(vote, staff_api, tmp_path,
                                                                                      capsys):
    a, b, c = texts(3)
    three = {"alpha-7b": a, "beta-13b": b, "gamma-70b": c}
    vote([[a], [b]])
    vote([[c], [a, b]], answers=three)
    vote(outcome="both_bad", prompt="Bad question?", answers={"alpha-7b": "u", "beta-13b": "v"})
    out, trl = tmp_path / "ds.jsonl", tmp_path / "ds.trl.jsonl"
    call_command("build_dataset", "--name", "cli", "--mode", "rankings", "--keep-ties", "--output", str(out),
                 "--trl", str(trl))
    printed = capsys.readouterr().out
    dataset = PreferenceDataset.objects.get(name="cli")
    assert dataset.sha256 in printed and "both_bad_dropped 1" in printed and "matched 3" in printed
    assert out.read_bytes() == staff_api.get(f"{DATASETS}/{dataset.pk}/records").content
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[1]["responses"][0] == c and sorted(lines[1]["responses"][1:]) == [a, b]   # a, b tie: by position
    assert lines[1]["ranking"] == [[0], [1, 2]]
    trl_rows = [json.loads(line) for line in trl.read_text().splitlines()]
    assert trl.read_bytes() == staff_api.get(f"{DATASETS}/{dataset.pk}/records", {"format": "trl"}).content
    assert all(set(row) == {"prompt", "chosen", "rejected"} for row in trl_rows)
    assert (trl_rows[0]["chosen"], trl_rows[0]["rejected"]) == (a, b)
    assert sorted((r["chosen"], r["rejected"]) for r in trl_rows[1:]) == [(c, a), (c, b)]


@pytest.mark.django_db
def test_command_errors_name_the_field_and_write_nothing(vote, tmp_path):
    vote([texts(2)[:1], texts(2)[1:]])
    with pytest.raises(CommandError, match=r"filters\.date_from"):
        call_command("build_dataset", "--name", "x", "--date-from", "yesterday")
    with pytest.raises(CommandError, match=r"filters\.contenders"):
        call_command("build_dataset", "--name", "x", "--contender", "nobody")
    with pytest.raises(CommandError, match=r"^filters: no vote"):
        call_command("build_dataset", "--name", "x", "--category", "cooking")
    with pytest.raises(CommandError, match="output"):
        call_command("build_dataset", "--name", "x", "--output", str(tmp_path / "missing-dir" / "x.jsonl"))
    assert not PreferenceDataset.objects.exists()


# --- filters ----------------------------------------------------------------------------------------------


def _used(client: APIClient, name: str, **filters) -> set[int]:
    response = client.post(DATASETS, {"name": name, "filters": filters}, format="json")
    assert response.status_code == 201, response.json()
    return set(PreferenceDataset.objects.get(pk=response.json()["id"]).vote_ids)


@pytest.mark.django_db
def test_category_language_dates_and_contenders_choose_the_votes(vote, staff_api):
    science = vote(outcome="a")
    french = vote(outcome="a", prompt="Pourquoi?", language="fr", answers={"alpha-7b": "oui", "beta-13b": "non"})
    cooking = vote(outcome="a", prompt="Rice?", category="cooking", answers={"alpha-7b": "r", "beta-13b": "s"})
    old = vote(outcome="a", prompt="Old?", days_ago=10, answers={"alpha-7b": "o", "beta-13b": "p"})
    gamma = vote(outcome="a", prompt="Gamma?", answers={"alpha-7b": "g", "gamma-70b": "h"})
    everything = {science.pk, french.pk, cooking.pk, old.pk, gamma.pk}
    assert _used(staff_api, "all") == everything
    assert _used(staff_api, "science", category="science") == everything - {cooking.pk}
    assert _used(staff_api, "fr", language="fr") == {french.pk}
    today = timezone.localdate()
    assert _used(staff_api, "recent", date_from=str(today - timedelta(days=1))) == everything - {old.pk}
    assert _used(staff_api, "old", date_to=str(today - timedelta(days=10))) == {old.pk}
    assert _used(staff_api, "day", date_from=str(today - timedelta(days=10)),
                 date_to=str(today - timedelta(days=10))) == {old.pk}
    assert _used(staff_api, "pair", contenders=["alpha-7b", "beta-13b"]) == everything - {gamma.pk}
    assert _used(staff_api, "pair+", contenders=["alpha-7b", "beta-13b", "gamma-70b"]) == everything


@pytest.mark.django_db
def test_distrusted_votes_are_left_out_by_default_and_counted(vote, staff_api):
    clean = vote(outcome="a")
    flagged_voter = vote(outcome="a", prompt="Q2?", answers={"alpha-7b": "c", "beta-13b": "d"})
    flagged_voter.voter.flagged, flagged_voter.voter.flag_reason = True, "automated"
    flagged_voter.voter.save()
    anomalous = vote(outcome="a", prompt="Q3?", answers={"alpha-7b": "e", "beta-13b": "f"})
    VoteFlag.objects.create(vote=anomalous, code=VoteFlagCode.ANOMALOUS_VOTER, reason="pattern")
    leak = vote(outcome="a", prompt="Q4?", answers={"alpha-7b": "I am alpha-7b.", "beta-13b": "h"})
    assert Battle.objects.get(pk=leak.battle_id).identity_leak
    duplicate = vote(outcome="a", prompt="Q5?", answers={"alpha-7b": "i", "beta-13b": "j"})
    VoteFlag.objects.create(vote=duplicate, code=VoteFlagCode.DUPLICATE_PROMPT, reason="asked 50 times")
    named = vote(outcome="a", prompt="Q6?", anonymous=False, answers={"alpha-7b": "k", "beta-13b": "l"})

    body = build(staff_api, name="default")
    assert set(PreferenceDataset.objects.get(pk=body["id"]).vote_ids) == {clean.pk}
    assert {k: body["counts"][k] for k in ("matched", "excluded_named", "excluded_identity_leak",
                                           "excluded_duplicate_prompt", "excluded_flagged")} == \
        {"matched": 6, "excluded_named": 1, "excluded_identity_leak": 1, "excluded_duplicate_prompt": 1,
         "excluded_flagged": 2}
    assert _used(staff_api, "flagged", exclude_flagged=False) == {clean.pk, flagged_voter.pk, anomalous.pk}
    assert _used(staff_api, "leaks", exclude_identity_leaks=False) == {clean.pk, leak.pk}
    assert _used(staff_api, "dupes", dedupe_prompts=False) == {clean.pk, duplicate.pk}
    assert _used(staff_api, "named", include_named=True) == {clean.pk, named.pk}
    assert _used(staff_api, "everything", exclude_flagged=False, exclude_identity_leaks=False, dedupe_prompts=False,
                 include_named=True) == {clean.pk, flagged_voter.pk, anomalous.pk, leak.pk, duplicate.pk, named.pk}


@pytest.mark.django_db
def test_multi_turn_votes_are_skipped_and_counted(vote, staff_api):
    def two_turns(battle: Battle) -> None:
        for slot in BattleSlot.objects.filter(battle=battle):
            slot.conversation = [{"role": "user", "content": "Chat?"}, {"role": "assistant", "content": "hi"},
                                 {"role": "user", "content": "more?"}, {"role": "assistant", "content": slot.response}]
            slot.save()

    single = vote(outcome="a")
    vote(outcome="b", prompt="Chat?", answers={"alpha-7b": "m1", "beta-13b": "m2"}, before_vote=two_turns)
    body = build(staff_api, name="turns")
    assert body["counts"]["skipped_multi_turn"] == 1
    assert PreferenceDataset.objects.get(pk=body["id"]).vote_ids == [single.pk]


# --- records from real votes ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_repeated_votes_on_one_answer_pair_become_one_soft_label(vote, staff_api):
    good, bad = texts(2)
    ids = [vote([[good], [bad]]).pk, vote([[good], [bad]]).pk, vote([[bad], [good]]).pk, vote([[good, bad]]).pk]
    hard = records(staff_api, build(staff_api, name="hard")["id"])
    assert hard == [{"prompt": "Why is the sky blue?", "chosen": good, "rejected": bad, "p": 2 / 3, "tie": False,
                     "vote_ids": ids[:3]}]
    soft = records(staff_api, build(staff_api, name="soft", keep_ties=True)["id"])
    assert soft[0]["p"] == 2.5 / 4 and soft[0]["vote_ids"] == ids


@pytest.mark.django_db
def test_k_wise_votes_in_each_mode(vote, staff_api):
    a, b, c = texts(3)
    answers = {"alpha-7b": a, "beta-13b": b, "gamma-70b": c}
    ranked = vote([[b], [a], [c]], answers=answers)
    best = vote(best=c, answers=answers, prompt="Best?")
    by_mode = {mode: records(staff_api, build(staff_api, name=mode, mode=mode)["id"])
               for mode in ("rankings", "all_pairs", "best_vs_rest")}
    assert by_mode["rankings"][0] == {"prompt": "Why is the sky blue?", "responses": [b, a, c],
                                      "ranking": [[0], [1], [2]], "vote_ids": [ranked.pk]}
    assert by_mode["rankings"][1]["ranking"] == [[0], [1, 2]] and by_mode["rankings"][1]["vote_ids"] == [best.pk]
    pairs = {mode: [(r["chosen"], r["rejected"]) for r in rows if r["prompt"] != "Best?"]
             for mode, rows in by_mode.items() if mode != "rankings"}
    assert sorted(pairs["all_pairs"]) == sorted([(b, a), (b, c), (a, c)])
    assert sorted(pairs["best_vs_rest"]) == sorted([(b, a), (b, c)])


@pytest.mark.django_db
def test_curriculum_orders_pairs_by_the_latest_leaderboard_gap(vote, staff_api):
    a, b, c = texts(3)
    vote([[a], [b], [c]], answers={"alpha-7b": a, "beta-13b": b, "gamma-70b": c})
    snapshot = Snapshot.objects.create(config_key=LeaderboardConfig().key(), config={}, method="bt",
                                       data_hash="0" * 64, n_votes=1, duration_ms=1)
    for rank, (name, rating) in enumerate([("alpha-7b", 1200.0), ("beta-13b", 1150.0), ("gamma-70b", 900.0)], 1):
        SnapshotRow.objects.create(snapshot=snapshot, contender=Contender.objects.get(name=name), model=name,
                                   rating=rating, rank=rank, rank_ub=rank, votes=1)
    body = build(staff_api, name="curriculum", mode="curriculum")
    # gaps: alpha-gamma 300, beta-gamma 250, alpha-beta 50
    assert [(r["chosen"], r["rejected"]) for r in records(staff_api, body["id"])] == [(a, c), (b, c), (a, b)]
    stored = PreferenceDataset.objects.get(pk=body["id"]).ratings
    assert stored == {"snapshot": snapshot.pk, "values": {"alpha-7b": 1200.0, "beta-13b": 1150.0, "gamma-70b": 900.0}}


def test_the_schema_names_the_dataset_bodies(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()
    assert "/api/v1/datasets/{dataset_id}/records" in schema
    assert "PreferenceDatasetInput" in schema and "PreferenceDatasetFilters" in schema


@pytest.mark.django_db
def test_votes_read_in_chunks_give_the_same_bytes(vote, staff_api, monkeypatch):
    for i in range(5):
        vote(outcome="a", prompt=f"Question {i}?")
    whole = build(staff_api, name="whole")
    monkeypatch.setattr("trainer.selectors.ROW_CHUNK", 2)
    chunked = build(staff_api, name="chunked")
    assert chunked["sha256"] == whole["sha256"] and chunked["n_records"] == 5
