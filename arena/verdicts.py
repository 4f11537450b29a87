"""What a vote says, parsed and checked apart from any request or table.

A ``VoteChoice`` is built from API input or an import row, validated against the battle's K, and
turned into model fields. Keeping it here means the API, the importer and the tests agree on what a
well-formed vote is.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from config.errors import ValidationFailed

from .models import MAX_K, Outcome, VoteKind

Ranking = tuple[tuple[int, ...], ...]


def _parse_outcome(value: Any, *, field_name: str) -> str:
    if value not in Outcome.values:
        raise ValidationFailed(f"must be one of {', '.join(Outcome.values)}", field=field_name)
    return str(value)


def _parse_position(value: Any, *, field_name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed("must be an integer position (0 = A)", field=field_name)
    if not 0 <= value < MAX_K:
        raise ValidationFailed(f"must be between 0 and {MAX_K - 1}", field=field_name)
    return value


def _parse_ranking(value: Any, *, field_name: str) -> Ranking:
    if not isinstance(value, list | tuple) or not value:
        raise ValidationFailed("must be a non-empty list of groups of positions, best first", field=field_name)
    groups = []
    for group in value:
        if not isinstance(group, list | tuple) or not group:
            raise ValidationFailed("every group must be a non-empty list of positions", field=field_name)
        groups.append(tuple(sorted(_parse_position(p, field_name=field_name) for p in group)))
    return tuple(groups)


def _check_position(position: int, *, k: int, field_name: str) -> None:
    if position >= k:
        raise ValidationFailed(f"position {position} does not exist in a battle of {k} responses", field=field_name)


def _check_ranking(ranking: Ranking, *, k: int, field_name: str) -> None:
    seen = [p for group in ranking for p in group]
    for p in seen:
        _check_position(p, k=k, field_name=field_name)
    if sorted(seen) != list(range(k)):
        raise ValidationFailed(f"must name every position 0..{k - 1} exactly once", field=field_name)


@dataclass(frozen=True)
class VoteChoice:
    kind: str
    outcome: str | None = None
    best_position: int | None = None
    ranking: Ranking | None = None
    aspects: Mapping[str, Any] = field(default_factory=dict)
    rationale: str = ""

    @classmethod
    def from_input(cls, data: Mapping[str, Any], *, allowed_aspects: list[str]) -> VoteChoice:
        """Read exactly one of ``outcome`` / ``best`` / ``ranking`` plus optional aspects and rationale."""
        given = [name for name in ("outcome", "best", "ranking") if data.get(name) is not None]
        if len(given) != 1:
            raise ValidationFailed("give exactly one of outcome (K = 2), best or ranking (K > 2)", field="outcome")
        name = given[0]
        aspects = cls._parse_aspects(data.get("aspects") or {}, name=name, allowed=allowed_aspects)
        rationale = data.get("rationale") or ""
        if not isinstance(rationale, str):
            raise ValidationFailed("must be a string", field="rationale")
        if name == "outcome":
            return cls(VoteKind.PAIRWISE, outcome=_parse_outcome(data["outcome"], field_name="outcome"),
                       aspects=aspects, rationale=rationale)
        if name == "best":
            return cls(VoteKind.BEST_OF_K, best_position=_parse_position(data["best"], field_name="best"),
                       aspects=aspects, rationale=rationale)
        return cls(VoteKind.RANKING, ranking=_parse_ranking(data["ranking"], field_name="ranking"),
                   aspects=aspects, rationale=rationale)

    @staticmethod
    def _parse_aspects(raw: Any, *, name: str, allowed: list[str]) -> dict[str, Any]:
        if not isinstance(raw, Mapping):
            raise ValidationFailed("must be an object mapping aspect to verdict", field="aspects")
        parsed: dict[str, Any] = {}
        for aspect, verdict in raw.items():
            field_name = f"aspects.{aspect}"
            if aspect not in allowed:
                raise ValidationFailed(f"unknown aspect; allowed: {', '.join(allowed) or 'none'}", field=field_name)
            if name == "outcome":
                parsed[aspect] = _parse_outcome(verdict, field_name=field_name)
            elif name == "best":
                parsed[aspect] = _parse_position(verdict, field_name=field_name)
            else:
                parsed[aspect] = [list(g) for g in _parse_ranking(verdict, field_name=field_name)]
        return parsed

    def validate_for(self, *, k: int) -> None:
        """Check the choice against a battle of ``k`` responses; raise ValidationFailed naming the field."""
        if self.kind == VoteKind.PAIRWISE and k != 2:
            raise ValidationFailed(f"a battle of {k} responses takes best or ranking, not outcome", field="outcome")
        if self.kind != VoteKind.PAIRWISE and k == 2:
            raise ValidationFailed("a battle of 2 responses takes outcome (a, b, tie, both_bad)", field="outcome")
        if self.best_position is not None:
            _check_position(self.best_position, k=k, field_name="best")
        if self.ranking is not None:
            _check_ranking(self.ranking, k=k, field_name="ranking")
        for aspect, verdict in self.aspects.items():
            if self.kind == VoteKind.BEST_OF_K:
                _check_position(verdict, k=k, field_name=f"aspects.{aspect}")
            elif self.kind == VoteKind.RANKING:
                _check_ranking(tuple(tuple(g) for g in verdict), k=k, field_name=f"aspects.{aspect}")

    def as_fields(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "outcome": self.outcome,
            "best_position": self.best_position,
            "ranking": [list(g) for g in self.ranking] if self.ranking is not None else None,
            "aspects": dict(self.aspects),
            "rationale": self.rationale,
        }

    def verdict_key(self) -> str:
        """Canonical text of the verdict alone (no aspects or rationale): what makes two votes the same."""
        return json.dumps(
            {"kind": self.kind, "outcome": self.outcome, "best": self.best_position,
             "ranking": [list(g) for g in self.ranking] if self.ranking is not None else None},
            sort_keys=True, separators=(",", ":"),
        )

    @classmethod
    def from_vote_fields(cls, *, kind: str, outcome: str | None, best_position: int | None,
                         ranking: list[list[int]] | None, aspects: Mapping[str, Any] | None = None,
                         rationale: str = "") -> VoteChoice:
        return cls(kind, outcome=outcome, best_position=best_position,
                   ranking=tuple(tuple(g) for g in ranking) if ranking is not None else None,
                   aspects=dict(aspects or {}), rationale=rationale)
