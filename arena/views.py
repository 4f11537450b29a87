"""Server-rendered pages of the arena. Same gate and services as the API: a page shows what the API would.

The pages work without JavaScript (a form opens a battle; answers appear once complete on reload);
``static/arena/battle.js`` adds streaming, voting without reloads, keyboard shortcuts and follow-ups.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from uuid import UUID

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from config.errors import ApplicationError, NotFound

from .captcha import captcha_enforce, captcha_verifier
from .identity import voter_for_read, voter_from_request
from .live.state import live_state_read
from .models import MAX_K, MIN_K, Battle, BattleStatus, Generation
from .ratelimit import RateLimited, rate_limit_enforce
from .rendering import markdown_to_safe_html
from .selectors import (
    POSITION_LABELS,
    arena_totals,
    battle_access,
    battle_can_continue,
    battle_view,
    contender_battle_counts,
)
from .services import battle_open, battle_void_if_stalled
from .sources import LIVE_KINDS


def _home_context(**extra: object) -> dict[str, object]:
    contenders = contender_battle_counts()
    return {"totals": arena_totals(), "contenders": contenders, "k_choices": range(MIN_K, MAX_K + 1),
            "live_count": sum(1 for c in contenders if c.active and c.source_kind in LIVE_KINDS),
            "captcha": captcha_verifier() is not None, **extra}


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "arena/home.html", _home_context())


def battle_new(request: HttpRequest) -> HttpResponse:
    """POST (the form without JavaScript): open a battle for this browser and go to it."""
    if request.method != "POST":
        return redirect("arena:home")
    try:
        k = int(request.POST.get("k", 2))
    except ValueError:
        k = 2
    prompt = request.POST.get("prompt", "") if request.POST.get("action") != "sample" else ""
    try:
        rate_limit_enforce(request, scope="battle")
        captcha_enforce(request, token=request.POST.get("captcha", ""))
        battle = battle_open(voter=voter_from_request(request), k=k, prompt_text=prompt)
    except ApplicationError as exc:
        response = render(request, "arena/home.html", _home_context(error=exc.message, prompt=prompt),
                          status=exc.status)
        if isinstance(exc, RateLimited):
            response["Retry-After"] = str(exc.retry_after)
        return response
    return redirect("arena:battle-page", battle_id=battle.id)


def battle_page(request: HttpRequest, battle_id: UUID) -> HttpResponse:
    voter = voter_for_read(request)
    try:
        battle_void_if_stalled(battle_id=battle_id, voter=voter)
        view = battle_view(battle_access(battle_id=battle_id, voter=voter))
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    turns = _turns(view)
    return render(request, "arena/battle.html", {
        "battle": view, "turns": turns, "aspects": settings.ARENA_VOTE_ASPECTS, "max_turns": settings.ARENA_MAX_TURNS,
        # Prepared (pool) answers cannot go on talking. Hiding the form tells the visitor that some answer was
        # prepared, which the sampled prompt already says; it never says which.
        "can_continue": (view.status == BattleStatus.OPEN and view.turns < settings.ARENA_MAX_TURNS
                         and not view.reveal and battle_can_continue(view.id)),
        "positions": [s.label for s in view.slots],
        "your_vote": _vote_summary(view),
    })


def _vote_summary(view) -> str:  # type: ignore[no-untyped-def]
    """The vote in words, as the voter gave it: "B is better", "C is best", "B > A = D > C"."""
    vote = view.vote
    if vote is None:
        return ""
    if vote.outcome is not None:
        return {"a": "A is better", "b": "B is better", "tie": "a tie", "both_bad": "both are bad"}[vote.outcome]
    if vote.best_position is not None:
        return f"{POSITION_LABELS[vote.best_position]} is best"
    return " > ".join(" = ".join(POSITION_LABELS[p] for p in group) for group in vote.ranking)


def _turns(view) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    """The conversation as turns: each user message with every slot's answer to it, rendered."""
    turns: list[dict[str, object]] = []
    for turn in range(view.turns):
        answers = []
        prompt = ""
        for slot in view.slots:
            users = [m["content"] for m in slot.conversation if m.get("role") == "user"]
            assistants = [m["content"] for m in slot.conversation if m.get("role") == "assistant"]
            prompt = users[turn] if turn < len(users) else (view.prompt.text if view.prompt and turn == 0 else "")
            if turn < len(assistants):
                text = assistants[turn]
            elif turn == view.turns - 1 and (view.generation == Generation.RUNNING or not assistants):
                # The turn in progress (released text), or a battle stored without its conversation. A turn
                # that failed has no answer: the previous turn's text must not appear under its prompt.
                text = slot.response
            else:
                text = ""
            answers.append({"slot": slot, "html": markdown_to_safe_html(text)})
        turns.append({"number": turn + 1, "prompt": prompt, "answers": answers, "current": turn == view.turns - 1})
    return turns


def about(request: HttpRequest) -> HttpResponse:
    return render(request, "arena/about.html")


def privacy(request: HttpRequest) -> HttpResponse:
    return render(request, "arena/privacy.html")


def _event(name: str, data: dict[str, object]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@require_GET
def battle_stream(request: HttpRequest, battle_id: UUID) -> HttpResponse:
    """Server-sent events with the current turn's answers as they are released (rendered, sanitised HTML).

    Events: ``update`` {turn, slots: [{position, html}]}, then ``done`` {turn, slots} or ``void``
    {reason}. Slots are always listed in position order and carry nothing but position and text, so
    the stream says no more than the page; the pace is set by ``arena.live.pacing``. Under ASGI the
    events come from an async generator (a sync one would be buffered whole); under WSGI the stream
    holds a worker thread but no database connection.
    """
    voter = voter_for_read(request)
    try:
        battle_void_if_stalled(battle_id=battle_id, voter=voter)
        view = battle_view(battle_access(battle_id=battle_id, voter=voter))
    except NotFound as exc:
        return JsonResponse(exc.as_body(), status=404)
    pump = _EventPump(view.id, view.turns)
    events = _events_async(pump) if isinstance(request, ASGIRequest) else _events_sync(pump)
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass events through as they come
    return response


def _slots_html(texts: list[str]) -> list[dict[str, object]]:
    return [{"position": i, "html": markdown_to_safe_html(t)} for i, t in enumerate(texts)]


class _EventPump:
    """One battle turn's events, polled: the live state while it changes, then the end from the database."""

    def __init__(self, battle_id: UUID, turn: int) -> None:
        self.battle_id, self.turn = battle_id, turn
        self.deadline = time.monotonic() + settings.ARENA_GENERATION_TIMEOUT_S + 30
        self.last_seq, self.last_ping = -1, time.monotonic()

    def poll(self) -> tuple[list[str], bool]:
        """Events to send now, and whether the stream is over."""
        if time.monotonic() > self.deadline:
            return [_event("void", {"reason": "the answers were not completed in time"})], True
        state = live_state_read(self.battle_id)
        if state is not None and state.turn == self.turn:
            if state.complete:
                return [_event("void", {"reason": state.void_reason}) if state.void_reason
                        else _event("done", {"turn": self.turn, "slots": _slots_html(state.texts)})], True
            if state.seq != self.last_seq and state.texts:  # texts is empty until the first release
                self.last_seq = state.seq
                return [_event("update", {"turn": self.turn, "slots": _slots_html(state.texts)})], False
        else:
            # No live state for this turn (another process's cache, or it expired): the database decides.
            battle = Battle.objects.filter(id=self.battle_id).only("status", "generation", "void_reason",
                                                                  "turns").first()
            _release_connection()  # a stream may last minutes: hold no connection between polls
            if battle is None or battle.status == BattleStatus.VOID:
                return [_event("void", {"reason": battle.void_reason if battle else "the battle is gone"})], True
            if battle.generation == Generation.DONE or battle.turns != self.turn:
                texts = [s.response for s in battle.slots.order_by("position")]
                _release_connection()
                return [_event("done", {"turn": battle.turns, "slots": _slots_html(texts)})], True
        if time.monotonic() - self.last_ping > 15:
            self.last_ping = time.monotonic()
            return [": ping\n\n"], False  # keeps proxies from closing an idle connection
        return [], False


def _release_connection() -> None:
    # Not inside a transaction (a test's, or ATOMIC_REQUESTS): closing there would break it.
    if not connection.in_atomic_block:
        connection.close()


def _events_sync(pump: _EventPump) -> Iterator[str]:
    _release_connection()  # the gate's queries are done: the stream itself needs no connection
    yield "retry: 2000\n\n"
    tick = settings.ARENA_STREAM_TICK_MS / 1000
    while True:
        events, done = pump.poll()
        yield from events
        if done:
            return
        time.sleep(tick)


async def _events_async(pump: _EventPump) -> AsyncIterator[str]:
    yield "retry: 2000\n\n"
    tick = settings.ARENA_STREAM_TICK_MS / 1000
    poll = sync_to_async(pump.poll)
    while True:
        events, done = await poll()
        for event in events:
            yield event
        if done:
            return
        await asyncio.sleep(tick)
