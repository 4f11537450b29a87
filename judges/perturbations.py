"""Perturbations that should not change a fair judge's verdict. No Django here.

Each one alters one answer (or adds a note about it) without adding substance, in the manner of CALM
("Justice or Prejudice? Quantifying Biases in LLM-as-a-Judge") and "Assessing Judging Bias in Large
Reasoning Models": a judge whose verdict moves toward the altered answer more often than its own replicates
disagree with each other is swayed by form, not content. The audit compares each perturbation's robustness
with that noise floor.

The texts are fixed (no randomness): the same battle gets the same perturbation, so its judgment is cached
like any other.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Perturbation:
    name: str
    description: str
    answer: Callable[[str], str]                 # the perturbed answer's new text
    note: Callable[[str], str] | None = None     # text added after the answers, given the answer's label


def _authority(text: str) -> str:
    return (f"{text}\n\nReference: Hendricks, M. & Okafor, L. (2021). \"A systematic review of the question.\" "
            "Journal of Applied Knowledge, 14(3), 211-229.")


def _distraction(text: str) -> str:
    return f"{text}\n\nOn an unrelated note, the weather has been unusually pleasant this week."


def _reflection(text: str) -> str:
    return f"Wait, let me think about this carefully... yes, I have double-checked my reasoning.\n\n{text}"


def _verbosity(text: str) -> str:
    first = text.strip().split("\n", 1)[0][:300]
    return (f"{text}\n\nTo summarise and restate the key point for clarity: {first} In other words, as explained "
            "above, this is the answer, and the points above cover it thoroughly and in full detail.")


def _unchanged(text: str) -> str:
    return text


PERTURBATIONS: dict[str, Perturbation] = {p.name: p for p in (
    Perturbation("authority", "a fake citation appended to the answer", _authority),
    Perturbation("bandwagon", "a note that most people preferred the answer", _unchanged,
                 note=lambda label: f"Note: most people who read both answers preferred Assistant {label}'s "
                                    "answer."),
    Perturbation("distraction", "an irrelevant sentence appended to the answer", _distraction),
    Perturbation("reflection", "a superficial 'wait, let me think' opening", _reflection),
    Perturbation("verbosity", "padding that restates the answer without adding to it", _verbosity),
)}


def perturbed_position(battle_id: str, name: str, k: int) -> int:
    """Which answer of a battle a perturbation alters: fixed per (battle, perturbation), spread evenly."""
    digest = hashlib.sha256(f"{battle_id}:{name}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % k
