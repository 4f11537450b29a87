"""Writes for judges: judges, runs (judged in both orders, cached, resumable), and audits."""
from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from config.errors import Conflict, ValidationFailed

from .backends import (
    JudgeBackend,
    JudgeBackendError,
    JudgeCompletion,
    JudgeHints,
    JudgeParams,
    ShownAnswer,
    backend_create,
)
from .models import Audit, Judge, JudgeRun, Judgment, RunJudgment, RunStatus, Verdict
from .models import JudgeBackend as BackendKind
from .perturbations import PERTURBATIONS, perturbed_position
from .prompts import LABELS, TEMPLATES, Exchange, parse_pairwise, parse_ranking, render_messages, template_for_k
from .selectors import BattleFacts, RunFilters, audit_records, battle_facts, battles_matching

logger = logging.getLogger(__name__)

MAX_REPLICATES = 10
MAX_CONCURRENCY = 64
# A run whose worker has not reported for this long is presumed dead: executing it again resumes it.
STALE_HEARTBEAT = timedelta(minutes=5)
FLUSH_EVERY_S = 1.0
MAX_ERRORS_KEPT = 5


# --- judges -----------------------------------------------------------------------------------------------


def validate_judge_config(kind: str, config: Any) -> dict[str, Any]:
    """``config`` checked and normalised for a backend of ``kind``; errors name ``config.<key>``."""
    if kind == BackendKind.SCRIPTED:
        from .backends.scripted import ScriptedConfigError, scripted_params

        try:
            return scripted_params(config).as_config()
        except ScriptedConfigError as exc:
            raise ValidationFailed(exc.message, field=f"config.{exc.key}" if exc.key else "config") from None
    if kind in (BackendKind.OPENAI, BackendKind.TRANSFORMERS):
        from arena.sources.config import SourceConfigError, validate_source_config

        try:
            return validate_source_config(kind, config)
        except SourceConfigError as exc:
            raise ValidationFailed(exc.message, field=(exc.field or "").replace("source_config", "config")) from None
    raise ValidationFailed(f"must be one of {', '.join(BackendKind.values)}", field="backend")


@transaction.atomic
def judge_create(*, name: str, backend: str, config: dict[str, Any] | None = None, family: str = "",
                 template: str = "arena-pair-v1", temperature: float = 0.0, max_tokens: int = 1024,
                 seed: int | None = None, prompt_price_per_mtok: float = 0.0,
                 completion_price_per_mtok: float = 0.0) -> Judge:
    """A new judge. Raises ValidationFailed naming the field (a taken name, an unknown template, a bad config)."""
    name = name.strip()
    if not name:
        raise ValidationFailed("must not be empty", field="name")
    if Judge.objects.filter(name=name).exists():
        raise ValidationFailed(f"a judge called {name!r} exists", field="name", code="judge_exists")
    if template not in TEMPLATES or TEMPLATES[template].kind != "pairwise":
        known = ", ".join(t for t, v in TEMPLATES.items() if v.kind == "pairwise")
        raise ValidationFailed(f"unknown pairwise template; known: {known}", field="template")
    if not 0 <= temperature <= 2:
        raise ValidationFailed("must be between 0 and 2", field="temperature")
    if max_tokens < 1:
        raise ValidationFailed("must be at least 1", field="max_tokens")
    return Judge.objects.create(
        name=name, backend=backend, config=validate_judge_config(backend, config or {}), family=family.strip(),
        template=template, temperature=temperature, max_tokens=max_tokens, seed=seed,
        prompt_price_per_mtok=Decimal(str(prompt_price_per_mtok)),
        completion_price_per_mtok=Decimal(str(completion_price_per_mtok)),
    )


# --- runs -------------------------------------------------------------------------------------------------


def run_filters_from(values: dict[str, Any]) -> RunFilters:
    """Check filters given as plain values (API or command line)."""
    for name in ("date_from", "date_to"):
        if values.get(name):
            try:
                date.fromisoformat(values[name])
            except (TypeError, ValueError):
                raise ValidationFailed("must be a date YYYY-MM-DD", field=f"filters.{name}") from None
    k = values.get("k")
    if k is not None and not (isinstance(k, int) and 2 <= k <= 6):
        raise ValidationFailed("must be between 2 and 6", field="filters.k")
    limit = values.get("limit")
    if limit is not None and not (isinstance(limit, int) and limit >= 1):
        raise ValidationFailed("must be a positive integer", field="filters.limit")
    return RunFilters(category=values.get("category") or "", language=values.get("language") or "",
                      date_from=values.get("date_from") or "", date_to=values.get("date_to") or "",
                      contenders=tuple(values.get("contenders") or ()), k=k,
                      exclude_flagged=bool(values.get("exclude_flagged", True)), limit=limit)


def _calls_per_battle(replicates: int, perturbations: Sequence[str]) -> int:
    return 2 * replicates + 2 * len(perturbations)   # both orders of each replicate and of each perturbation


@transaction.atomic
def judge_run_create(*, judge: Judge, filters: RunFilters, replicates: int = 1, perturbations: Sequence[str] = (),
                     concurrency: int = 4) -> JudgeRun:
    """A queued run over the battles that match ``filters`` now (the set is frozen: later votes are not added).

    Raises ValidationFailed naming the field: no matching battle, an unknown perturbation, a count out of range.
    """
    if not 1 <= replicates <= MAX_REPLICATES:
        raise ValidationFailed(f"must be between 1 and {MAX_REPLICATES}", field="replicates")
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ValidationFailed(f"must be between 1 and {MAX_CONCURRENCY}", field="concurrency")
    unknown = [p for p in perturbations if p not in PERTURBATIONS]
    if unknown:
        raise ValidationFailed(f"unknown perturbation {unknown[0]!r}; known: {', '.join(PERTURBATIONS)}",
                               field="perturbations")
    ids = battles_matching(filters).values_list("id", flat=True)
    if filters.limit is not None:
        ids = ids[: filters.limit]
    battle_ids = sorted(str(i) for i in ids)
    if not battle_ids:
        raise ValidationFailed("no voted battle with text answers matches these filters", field="filters",
                               code="no_battles")
    return JudgeRun.objects.create(
        judge=judge, template_version=judge.template, filters=filters.as_json(), battle_ids=battle_ids,
        replicates=replicates, perturbations=list(dict.fromkeys(perturbations)), concurrency=concurrency,
        n_total=len(battle_ids) * _calls_per_battle(replicates, perturbations),
    )


@dataclass(frozen=True)
class Call:
    """One judge call a run needs."""

    battle: BattleFacts
    order: tuple[int, ...]          # battle positions in the order shown
    replicate: int
    perturbation: str
    perturbed: int | None           # battle position of the perturbed answer
    messages: list[dict[str, str]]
    params: JudgeParams
    cache_key: str


def _calls(run: JudgeRun, judge: Judge, battles: Sequence[BattleFacts]) -> list[Call]:
    calls = []
    for battle in battles:
        forward = tuple(range(battle.k))
        for order in (forward, forward[::-1]):
            for replicate in range(run.replicates):
                calls.append(_call(run, judge, battle, order, replicate, "", None))
            for name in run.perturbations:
                calls.append(_call(run, judge, battle, order, 0, name, perturbed_position(battle.id, name, battle.k)))
    return calls


def _call(run: JudgeRun, judge: Judge, battle: BattleFacts, order: tuple[int, ...], replicate: int,
          perturbation: str, perturbed: int | None) -> Call:
    template = template_for_k(run.template_version, battle.k)
    exchanges = []
    note = ""
    for shown_index, position in enumerate(order):
        answers = battle.answers[position]
        if position == perturbed:
            spec = PERTURBATIONS[perturbation]
            answers = (*answers[:-1], spec.answer(answers[-1]))
            if spec.note is not None:
                note = spec.note(LABELS[shown_index])
        exchanges.append(Exchange(user_turns=battle.user_turns, answer_turns=answers))
    messages = render_messages(template, exchanges, note=note)
    # A seeded judge gets a different seed per replicate (else temperature > 0 replicates would be copies).
    seed = None if judge.seed is None else judge.seed + replicate
    params = JudgeParams(temperature=judge.temperature, max_tokens=judge.max_tokens, seed=seed)
    key_material = {
        "judge": judge.pk, "backend": judge.backend, "config": _output_relevant(judge.config),
        "template": template.name, "messages": messages,
        "params": {"temperature": params.temperature, "max_tokens": params.max_tokens, "seed": params.seed},
        "order": list(order), "replicate": replicate,
    }
    cache_key = hashlib.sha256(json.dumps(key_material, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return Call(battle=battle, order=order, replicate=replicate, perturbation=perturbation, perturbed=perturbed,
                messages=messages, params=params, cache_key=cache_key)


def _output_relevant(config: dict[str, Any]) -> dict[str, Any]:
    """The backend settings that can change an answer (not timeouts, retries or the key's variable)."""
    return {k: v for k, v in config.items() if k not in {"timeout_s", "max_retries", "api_key_env", "stream"}}


def _hints(judge: Judge, call: Call) -> JudgeHints:
    battle = call.battle
    shown = [ShownAnswer(model=battle.models[p], family=battle.families[p], tokens=battle.tokens[p],
                         markdown=battle.markdown[p], perturbed=p == call.perturbed) for p in call.order]
    human = None
    if battle.human_ranking is not None:
        place = {p: i for i, p in enumerate(call.order)}
        human = [sorted(place[p] for p in group) for group in battle.human_ranking]
    return JudgeHints(shown=shown, judge_family=judge.family, human_ranking=human, perturbation=call.perturbation,
                      key=call.cache_key)


def _verdict(call: Call, text: str) -> tuple[str, list[list[int]] | None]:
    """The verdict in battle terms: a / b / tie for two answers, a ranking of battle positions for more."""
    if call.battle.k == 2:
        shown = parse_pairwise(text)
        if shown == "unparsed":
            return Verdict.UNPARSED, None
        if shown == "tie":
            return Verdict.TIE, None
        winner = call.order[0] if shown == "first" else call.order[1]
        return (Verdict.A if winner == 0 else Verdict.B), None
    ranking = parse_ranking(text, call.battle.k)
    if ranking is None:
        return Verdict.UNPARSED, None
    return Verdict.RANKING, [sorted(call.order[i] for i in group) for group in ranking]


def _cost(judge: Judge, completion: JudgeCompletion) -> Decimal:
    tokens_in = Decimal(completion.prompt_tokens or 0)
    tokens_out = Decimal(completion.completion_tokens or 0)
    return (tokens_in * judge.prompt_price_per_mtok + tokens_out * judge.completion_price_per_mtok) / Decimal(10**6)


@dataclass
class _Tally:
    done: int
    cached: int
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal = Decimal(0)


Progress = Callable[[int, int], None]


def _start(run_id: int) -> JudgeRun:
    with transaction.atomic():
        run = JudgeRun.objects.select_for_update().select_related("judge").get(pk=run_id)
        if run.status == RunStatus.SUCCEEDED:
            raise Conflict("the run has finished", code="run_finished")
        if run.status == RunStatus.CANCELLED:
            raise Conflict("the run was cancelled", code="run_cancelled")
        if run.status == RunStatus.RUNNING and run.heartbeat and timezone.now() - run.heartbeat < STALE_HEARTBEAT:
            raise Conflict("the run is being executed by another worker", code="run_running")
        run.status, run.finished, run.error, run.n_failed = RunStatus.RUNNING, None, "", 0
        run.started = run.started or timezone.now()
        run.heartbeat = timezone.now()
        run.save(update_fields=["status", "finished", "error", "n_failed", "started", "heartbeat"])
        return run


def judge_run_execute(*, run_id: int, progress: Progress | None = None,
                      backend: JudgeBackend | None = None) -> JudgeRun:
    """Make every call the run needs that is not cached yet; resumable, and safe to run again after a crash.

    Calls run on ``run.concurrency`` threads (the backend is all they do; every database write happens on
    this thread). Judgments are stored as they arrive, so a crash loses at most the calls in flight. A call
    that fails after the backend's own retries is counted and the run ends ``failed``; executing it again
    makes only the missing calls. ``progress(done, total)`` is called as the run advances.
    """
    run = _start(run_id)
    judge = run.judge
    backend = backend or backend_create(judge.backend, judge.config)
    calls = _calls(run, judge, battle_facts(run.battle_ids))
    n_total = len(calls)
    tally = _link_cached(run, calls)
    errors: list[str] = []
    todo = [c for c in calls if c.cache_key not in tally.linked]
    last_flush = time.monotonic()
    if progress:
        progress(tally.done, n_total)
    with ThreadPoolExecutor(max_workers=run.concurrency, thread_name_prefix="judge") as pool:
        pending: dict[Future[JudgeCompletion], Call] = {}
        queue = iter(todo)
        cancelled = False
        while True:
            while not cancelled and len(pending) < run.concurrency * 2 and (call := next(queue, None)) is not None:
                pending[pool.submit(backend.complete, call.messages, call.params, _hints(judge, call))] = call
            if not pending:
                break
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                call = pending.pop(future)
                try:
                    completion = future.result()
                except JudgeBackendError as exc:
                    tally.failed += 1
                    if len(errors) < MAX_ERRORS_KEPT:
                        errors.append(exc.reason)
                    continue
                _store(run, judge, call, completion, tally)
                if progress:
                    progress(tally.done, n_total)
            if time.monotonic() - last_flush >= FLUSH_EVERY_S:
                last_flush = time.monotonic()
                cancelled = _flush(run, tally, n_total)
    return _finish(run, tally, n_total, errors)


@dataclass
class _Linked(_Tally):
    linked: set[str] | None = None


def _link_cached(run: JudgeRun, calls: Sequence[Call]) -> _Linked:
    """Link every already-made judgment the run needs; return the tally of what is done."""
    keys = [c.cache_key for c in calls]
    existing: dict[str, int] = {}
    for start in range(0, len(keys), 1000):
        existing.update(Judgment.objects.filter(cache_key__in=keys[start:start + 1000]).values_list("cache_key", "id"))
    linked = set(RunJudgment.objects.filter(run=run).values_list("judgment_id", flat=True))
    new_links = [RunJudgment(run=run, judgment_id=jid, cached=True) for jid in existing.values() if jid not in linked]
    RunJudgment.objects.bulk_create(new_links, ignore_conflicts=True)
    items = RunJudgment.objects.filter(run=run)
    return _Linked(done=items.count(), cached=items.filter(cached=True).count(),
                   prompt_tokens=run.prompt_tokens, completion_tokens=run.completion_tokens, cost=run.cost,
                   linked=set(existing))


def _store(run: JudgeRun, judge: Judge, call: Call, completion: JudgeCompletion, tally: _Tally) -> None:
    verdict, ranking = _verdict(call, completion.text)
    cost = _cost(judge, completion)
    try:
        with transaction.atomic():
            judgment = Judgment.objects.create(
                cache_key=call.cache_key, judge=judge, battle_id=call.battle.id, template_version=run.template_version,
                order="".join(str(p) for p in call.order), replicate=call.replicate, perturbation=call.perturbation,
                perturbed_position=call.perturbed, raw_text=completion.text, verdict=verdict, ranking=ranking,
                prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens,
                latency_ms=completion.latency_ms, cost=cost,
            )
            cached = False
    except IntegrityError:   # another run made the same call meanwhile: use its judgment
        judgment = Judgment.objects.get(cache_key=call.cache_key)
        cached = True
    _, created = RunJudgment.objects.get_or_create(run=run, judgment=judgment, defaults={"cached": cached})
    if created:
        tally.done += 1
        tally.cached += cached
    if not cached:
        tally.prompt_tokens += completion.prompt_tokens or 0
        tally.completion_tokens += completion.completion_tokens or 0
        tally.cost += cost


def _flush(run: JudgeRun, tally: _Tally, n_total: int) -> bool:
    """Save progress and the heartbeat; True when the run was cancelled meanwhile."""
    updated = JudgeRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
        n_total=n_total, n_done=tally.done, n_cached=tally.cached, n_failed=tally.failed,
        prompt_tokens=tally.prompt_tokens, completion_tokens=tally.completion_tokens, cost=tally.cost,
        heartbeat=timezone.now())
    return updated == 0


def _finish(run: JudgeRun, tally: _Tally, n_total: int, errors: list[str]) -> JudgeRun:
    with transaction.atomic():
        run = JudgeRun.objects.select_for_update().get(pk=run.pk)
        run.n_total, run.n_done, run.n_cached, run.n_failed = n_total, tally.done, tally.cached, tally.failed
        run.prompt_tokens, run.completion_tokens, run.cost = tally.prompt_tokens, tally.completion_tokens, tally.cost
        run.heartbeat = run.finished = timezone.now()
        if run.status == RunStatus.CANCELLED:
            pass
        elif tally.done == n_total:
            run.status = RunStatus.SUCCEEDED
        else:
            run.status = RunStatus.FAILED
            missing = n_total - tally.done
            reasons = "; ".join(dict.fromkeys(errors)) or "the battles changed"
            run.error = f"{missing} of {n_total} calls have no judgment ({reasons}); run it again to resume"
        run.save()
        return run


@transaction.atomic
def judge_run_cancel(*, run: JudgeRun) -> JudgeRun:
    run = JudgeRun.objects.select_for_update().get(pk=run.pk)
    if run.status not in (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.FAILED):
        raise Conflict(f"a {run.status} run cannot be cancelled", code="run_finished")
    run.status, run.finished = RunStatus.CANCELLED, timezone.now()
    run.save(update_fields=["status", "finished"])
    return run


# --- audits -----------------------------------------------------------------------------------------------


def audit_create(*, run: JudgeRun, seed: int = 0, bootstrap: int = 200, level: float = 0.95,
                 length_threshold: int = 30) -> Audit:
    """Audit a finished run's judgments against the human votes of the same battles.

    Only a succeeded run is audited: a failed or running one would mix a partial set of battles (one order
    without the other) into figures that assume both.
    """
    from .audits import audit_judgments, judgments_from_records

    if run.status != RunStatus.SUCCEEDED:
        raise Conflict(f"only a succeeded run can be audited (this one is {run.status})", code="run_not_finished")
    if not (0 <= seed < 2**32 and 0 <= bootstrap <= 2000 and 0.5 <= level < 1 and length_threshold >= 0):
        raise ValidationFailed("seed, bootstrap (0..2000), level (0.5..1) or length_threshold out of range",
                               field="params")
    started = time.monotonic()
    records = list(audit_records(run))
    models = {r["model_a"] for r in records} | {r["model_b"] for r in records}
    human_ratings, reference = _human_reference(models)
    report = audit_judgments(judgments_from_records(records), seed=seed, bootstrap=bootstrap, level=level,
                             length_threshold=length_threshold, human_ratings=human_ratings)
    _check_finite(report)
    return Audit.objects.create(
        run=run, params={"seed": seed, "bootstrap": bootstrap, "level": level, "length_threshold": length_threshold,
                         "human_ranking": reference},
        n_judgments=len(records), report=report, duration_ms=round((time.monotonic() - started) * 1000))


def _human_reference(models: set[str]) -> tuple[dict[str, float] | None, str]:
    """The human ratings the judge's corrected ranking is compared with: the arena's default leaderboard (its
    latest snapshot, never a new fit) when it rates at least two of the run's models, else the human votes
    of the run's own battles (the audit core's default)."""
    from leaderboard.config import LeaderboardConfig
    from leaderboard.selectors import snapshot_latest

    snapshot = snapshot_latest(LeaderboardConfig())
    if snapshot is not None:
        ratings = dict(snapshot.rows.filter(model__in=models).values_list("model", "rating"))
        if len(ratings) >= 2:
            return ratings, f"leaderboard snapshot {snapshot.pk}"
    return None, "human votes of the same battles"


def _check_finite(value: Any) -> None:
    """A report is stored as JSON: a NaN or infinity would be a bug in the audit core, not a figure."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("the audit produced a non-finite number")
    if isinstance(value, dict):
        for item in value.values():
            _check_finite(item)
    elif isinstance(value, list):
        for item in value:
            _check_finite(item)
