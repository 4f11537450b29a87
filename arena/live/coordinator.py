"""Runs a battle's response sources for one turn and releases their text to the visitor at a common pace.

``generation_start`` is called once the transaction that opened the battle (or added a turn) commits.
It runs the turn in a background thread of this web process: each slot's source in a thread of a
bounded pool, the coordinator loop in its own thread. Every tick the loop asks ``pacing`` how much of
each answer may be shown and writes that to the shared live state; when every source has finished it
stores the answers (or voids the battle) through ``battle_generation_finish``.

Why threads in the web process rather than a task queue: the first token should reach the visitor
within a second, and the arena's sources are I/O-bound HTTP calls (local models excepted, which hold
a lock per model). If the process dies mid-turn the battle stays "running" until
``battle_void_if_stalled`` voids it on the next read.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from uuid import UUID

from django.conf import settings
from django.db import close_old_connections, connection

from ..models import Battle, BattleSlot
from ..services import SlotAnswer, battle_generation_finish
from ..sources import source_for
from ..sources.base import GenerationParams, SourceResult
from .pacing import Pacer
from .state import LiveState, live_state_read, live_state_write

logger = logging.getLogger(__name__)

_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_threads: dict[str, threading.Thread] = {}


def _source_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=settings.ARENA_GENERATION_THREADS,
                                       thread_name_prefix="arena-source")
        return _pool


class GenerationAbandoned(Exception):
    """Raised into a source's stream when nobody waits for it any more (the turn failed or timed out)."""


@dataclass
class _Buffer:
    """Text a source has streamed so far; appended by its thread, read by the coordinator."""

    pieces: list[str] = field(default_factory=list)
    length: int = 0
    cancelled: bool = False

    def append(self, piece: str) -> None:
        # A source treats an exception from its on_delta as "stop": this frees the pool thread (and a
        # local model's lock) instead of generating an answer nobody will read.
        if self.cancelled:
            raise GenerationAbandoned
        self.pieces.append(piece)
        self.length += len(piece)

    def text(self) -> str:
        return "".join(self.pieces)


@dataclass(frozen=True)
class _SlotPlan:
    position: int
    contender_id: int
    messages: list[dict[str, str]]


def generation_start(*, battle_id: UUID, turn: int) -> None:
    """Generate ``turn`` of the battle in the background (returns at once)."""
    live_state_write(battle_id, LiveState(turn=turn, texts=[], seq=0))
    thread = threading.Thread(target=_run, kwargs={"battle_id": battle_id, "turn": turn},
                              name=f"arena-battle-{battle_id}", daemon=True)
    _threads[str(battle_id)] = thread
    thread.start()


def generation_wait(battle_id: UUID | str, timeout: float = 30.0) -> bool:
    """Wait for this process's generation of the battle to end; True if it did (for tools and tests)."""
    thread = _threads.get(str(battle_id))
    if thread is not None:
        thread.join(timeout)
        return not thread.is_alive()
    return True


def _plan(battle_id: UUID, turn: int) -> list[_SlotPlan]:
    slots = BattleSlot.objects.filter(battle_id=battle_id).order_by("position")
    return [_SlotPlan(position=s.position, contender_id=s.contender_id, messages=list(s.conversation or []))
            for s in slots]


def _generate(contender_id: int, messages: list[dict[str, str]], buffer: _Buffer) -> SourceResult:
    """One source call, in a pool thread. Its own errors come back as a result; anything else is a bug."""
    from ..models import Contender

    started = time.monotonic()
    try:
        contender = Contender.objects.get(id=contender_id)
        source = source_for(contender)
        return source.generate(messages, GenerationParams(), buffer.append)
    except GenerationAbandoned:
        return SourceResult.failure("abandoned: the turn had already ended", started=started)
    except Exception as exc:  # a config error or a bug must void the battle, not hang it
        logger.exception("source of contender %s failed", contender_id)
        return SourceResult.failure(f"the model's source failed ({type(exc).__name__})", started=started)
    finally:
        connection.close()  # pool threads are reused: never keep a connection across calls


def _run(*, battle_id: UUID, turn: int) -> None:
    close_old_connections()
    try:
        answers = _stream_turn(battle_id, turn)
        battle_generation_finish(battle_id=battle_id, turn=turn, answers=answers)
        _record_health(answers, battle_id)
        _publish_final(battle_id, turn)
    except Exception:
        logger.exception("generation of battle %s turn %s failed", battle_id, turn)
        from ..services import SlotAnswer as Answer

        battle_generation_finish(battle_id=battle_id, turn=turn, answers=[
            Answer(position=0, text="", token_count=None, latency_ms=0, error="the arena failed to run the models")])
        _publish_final(battle_id, turn)
    finally:
        _threads.pop(str(battle_id), None)
        connection.close()


def _stream_turn(battle_id: UUID, turn: int) -> list[SlotAnswer]:
    plan = _plan(battle_id, turn)
    buffers = [_Buffer() for _ in plan]
    pool = _source_pool()
    futures: list[Future[SourceResult]] = [
        pool.submit(_generate, p.contender_id, p.messages, buffer) for p, buffer in zip(plan, buffers, strict=True)]
    pacer = Pacer(len(plan))
    seq = 0
    tick = settings.ARENA_STREAM_TICK_MS / 1000
    deadline = time.monotonic() + settings.ARENA_GENERATION_TIMEOUT_S
    while time.monotonic() <= deadline:
        finished = [f.done() for f in futures]
        if any(f and not f_.result().ok for f, f_ in zip(finished, futures, strict=True)):
            break  # a failed source voids the battle: nothing more to show
        # Read lengths once, after `finished`: a source thread may append between two reads.
        produced = [b.length for b in buffers]
        if all(finished) and pacer.released == produced:
            break
        before = pacer.released
        released = pacer.tick(produced=produced, finished=finished)
        if released != before:
            seq += 1
            texts = [b.text()[:n] for b, n in zip(buffers, released, strict=True)]
            live_state_write(battle_id, LiveState(turn=turn, texts=texts, seq=seq))
        time.sleep(tick)
    for buffer in buffers:
        buffer.cancelled = True  # sources still streaming stop at their next piece (see _Buffer.append)
    aborted = any(f.done() and not f.result().ok for f in futures)
    answers = [_answer(p, f, aborted=aborted) for p, f in zip(plan, futures, strict=True)]
    return [a for a in answers if a is not None]


def _answer(plan: _SlotPlan, future: Future[SourceResult], *, aborted: bool) -> SlotAnswer | None:
    """The slot's answer; None for one still running when another source's failure ended the turn.

    Such a slot is neither a success nor a failure of its own: it is not blamed in the void reason nor
    counted against its source's health.
    """
    if not future.done():
        if aborted:
            return None
        return SlotAnswer(position=plan.position, text="", token_count=None, latency_ms=0,
                          error=f"no answer within {settings.ARENA_GENERATION_TIMEOUT_S} s")
    result = future.result()
    return SlotAnswer(position=plan.position, text=result.text, token_count=result.token_count,
                      latency_ms=result.latency_ms, error=result.error)


def _record_health(answers: list[SlotAnswer], battle_id: UUID) -> None:
    from ..matchmaking.health import source_failure_record, source_success_record

    contenders = dict(BattleSlot.objects.filter(battle_id=battle_id).values_list("position", "contender_id"))
    for answer in answers:
        if answer.error:
            source_failure_record(contenders[answer.position])
        else:
            source_success_record(contenders[answer.position])


def _publish_final(battle_id: UUID, turn: int) -> None:
    """The last live state: the full answers (now in the database), or why the battle is void."""
    battle = Battle.objects.filter(id=battle_id).first()
    if battle is not None and battle.turns != turn:
        return  # a next turn has started since: its own state must not be overwritten by this one's end
    previous = live_state_read(battle_id)
    seq = (previous.seq if previous else 0) + 1
    if battle is None or battle.status == "void":
        reason = battle.void_reason if battle is not None else "the battle was removed"
        live_state_write(battle_id, LiveState(turn=turn, texts=[], seq=seq, complete=True, void_reason=reason))
        return
    texts = list(BattleSlot.objects.filter(battle_id=battle_id).order_by("position").values_list("response", flat=True))
    live_state_write(battle_id, LiveState(turn=turn, texts=texts, seq=seq, complete=True))
