"""How much of each streamed answer is shown, so that streaming does not reveal who is answering.

Models differ in speed: a visitor who watches answer A appear at 80 tokens/s and B at 20 tokens/s,
or A start two seconds before B, learns something about which model is which — the kind of hint the
arena's anonymity exists to remove. So the text released to the page is not the text the sources
have produced; it follows these rules:

1. Nothing is released until every slot has produced its first piece (or finished): the time to the
   first token of each model is hidden behind the slowest one.
2. At each tick every slot advances by the *same* number of characters: the smallest backlog among
   the slots still generating (a finished slot's backlog does not limit the others). All answers
   therefore grow in lockstep, at the pace of the slowest live model, and an answer stops growing
   only because its text has ended — which is content, not timing.
3. Once one answer has ended, the others must not speed up to their own model's pace (that would
   show which slot a fast model holds): the step is capped at the average pace shown so far
   (``max_step``, computed by the coordinator), until every answer is fully shown — also after every
   source has finished, so the end of the stream says nothing about when a model finished.
4. Each update lists the slots in position order, whatever order their text arrived in.

No number here depends on which contender sits in which slot, only on how much text each has.
"""
from __future__ import annotations

from collections.abc import Sequence


def paced_release(
    *, produced: Sequence[int], released: Sequence[int], finished: Sequence[bool], max_step: int | None = None
) -> list[int]:
    """Characters of each slot to show after this tick.

    Parameters
    ----------
    produced : sequence of int
        Characters each slot's source has produced so far.
    released : sequence of int
        Characters of each slot already shown (never more than ``produced``).
    finished : sequence of bool
        Whether each slot's source has finished (successfully or not).
    max_step : int, optional
        Most characters any slot may advance this tick (rule 3); None = no cap.

    Returns
    -------
    list of int
        The new released length of each slot: never less than ``released``, never more than
        ``produced``.
    """
    if not len(produced) == len(released) == len(finished):
        raise ValueError("produced, released and finished must have one entry per slot")
    if any(r > p for p, r in zip(produced, released, strict=True)):
        raise ValueError("cannot have released more than was produced")
    if max_step is not None and max_step < 1:
        raise ValueError("max_step must be at least 1")
    if any(p == 0 and not f for p, f in zip(produced, finished, strict=True)):
        return list(released)  # rule 1: someone has not started yet
    backlogs = [p - r for p, r, f in zip(produced, released, finished, strict=True) if not f]
    step = min(backlogs) if backlogs else max(p - r for p, r in zip(produced, released, strict=True))
    if max_step is not None:
        step = min(step, max_step)
    return [min(p, r + step) for p, r in zip(produced, released, strict=True)]


class Pacer:
    """The release rules over a whole turn: call :meth:`tick` once per tick with what the sources have.

    Rule 3's cap is fixed at the first tick on which a source that was still generating when text
    first appeared has finished: the average pace shown until then, when the answers grew in lockstep
    at the pace of the slowest live model. From then on no answer advances faster, whichever finishes
    next (a source that has just finished may still have text waiting, and without the cap the others
    would jump ahead to their own model's pace). A source finished before anything was shown (a pooled
    answer) never set the pace, so its finishing does not fix the cap.
    """

    def __init__(self, k: int) -> None:
        self.released = [0] * k
        self.ticks_shown = 0  # ticks since text first appeared
        self.cap: int | None = None
        self._finished_before_shown: list[bool] | None = None

    def tick(self, *, produced: Sequence[int], finished: Sequence[bool]) -> list[int]:
        shown = max(self.released, default=0)
        if shown > 0 and self._finished_before_shown is None:
            self._finished_before_shown = list(finished)
        if self.cap is None and self._finished_before_shown is not None and any(
                f and not early for f, early in zip(finished, self._finished_before_shown, strict=True)):
            self.cap = max(1, -(-shown // max(self.ticks_shown, 1)))  # ceil: never slower than the pace shown
        self.released = paced_release(produced=produced, released=self.released, finished=finished,
                                      max_step=self.cap)
        if max(self.released, default=0) > 0:
            self.ticks_shown += 1
        return list(self.released)
