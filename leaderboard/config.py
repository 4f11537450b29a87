"""What a leaderboard is fitted with: method, tie model, intervals, and which votes count."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from datetime import date
from typing import Any

from config.errors import ValidationFailed
from leaderboard.ratings import CI_METHODS, METHODS, TIE_MODES, FitOptionError, check_fit_options

# The option lists are the core's (leaderboard/ratings/fit.py); the API's enums, the page's selects and the
# commands' help come from here.
TIES = TIE_MODES
CIS = CI_METHODS
MAX_BOOTSTRAP = 1000
__all__ = ["CIS", "DEFAULT_CONFIGS", "MAX_BOOTSTRAP", "METHODS", "TIES", "LeaderboardConfig", "default_ties"]


def default_ties(method: str) -> str:
    """The tie model a leaderboard of ``method`` uses unless one is asked for.

    Bradley-Terry: Rao-Kupper, the tie model with the highest held-out log-likelihood per vote on the
    arena's own votes, ahead of Davidson and well ahead of ties as 1/2 (README, "Leaderboards"; every
    refit recomputes the comparison and the page shows it). Plackett-Luce and bayes: ties as 1/2, the only
    rule that K-wise rankings combine with. Elo ignores it.
    """
    return "rao-kupper" if method == "bt" else "half"


@dataclass(frozen=True)
class LeaderboardConfig:
    method: str = "bt"
    ties: str = ""  # "" = default_ties(method), filled in on construction
    ci: str = "bootstrap"
    bootstrap: int = 100
    style_control: bool = False
    seed: int = 0
    anchor: str = ""
    # Which votes count.
    category: str = ""
    language: str = ""
    date_from: str = ""  # ISO dates, inclusive
    date_to: str = ""
    exclude_ties: bool = False  # drop ties and "both bad"
    exclude_both_bad: bool = False  # drop only "both bad" (by default it counts as a tie)
    # Flagged votes (identity leaks, duplicate prompts) and flagged voters' votes are kept but not counted
    # unless asked for: a default leaderboard never rests on votes the arena itself distrusts.
    exclude_flagged: bool = True
    include_named: bool = False  # votes where the voter saw the names (FastChat's non-anony)
    aspect: str = ""  # fit the per-aspect verdicts instead of the overall one

    def __post_init__(self) -> None:
        if not self.ties:
            object.__setattr__(self, "ties", default_ties(self.method))
        try:  # the fit's own check of its options, so that every front door refuses the same values
            check_fit_options(method=self.method, ties=self.ties, ci=self.ci, bootstrap=self.bootstrap)
        except FitOptionError as exc:
            raise ValidationFailed(exc.message, field=exc.field) from None
        self._check("bootstrap", 0 <= self.bootstrap <= MAX_BOOTSTRAP, f"between 0 and {MAX_BOOTSTRAP}")
        self._check("seed", 0 <= self.seed < 2**32, "between 0 and 2**32 - 1")
        for name in ("date_from", "date_to"):
            value = getattr(self, name)
            if value:
                try:
                    day = date.fromisoformat(value)
                except ValueError:
                    raise ValidationFailed("must be a date YYYY-MM-DD", field=name) from None
                self._check(name, date(1970, 1, 1) <= day < date(9999, 12, 31), "between 1970 and 9998")

    @staticmethod
    def _check(field_name: str, ok: bool, expected: str) -> None:
        if not ok:
            raise ValidationFailed(f"must be {expected}", field=field_name)

    @classmethod
    def from_query(cls, query: dict[str, Any]) -> LeaderboardConfig:
        """Build from string query parameters (API / page); unknown keys are ignored."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = query.get(f.name)
            if raw is None or raw == "":
                continue
            if f.type == "bool":
                if str(raw).lower() not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                    raise ValidationFailed("must be true or false", field=f.name)
                values[f.name] = str(raw).lower() in {"1", "true", "yes", "on"}
            elif f.type == "int":
                try:
                    values[f.name] = int(raw)
                except (TypeError, ValueError):
                    raise ValidationFailed("must be an integer", field=f.name) from None
            else:
                values[f.name] = str(raw)
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()

    def with_changes(self, **changes: Any) -> LeaderboardConfig:
        return replace(self, **changes)


# The leaderboards kept fresh by the background refit task (the page's default views).
DEFAULT_CONFIGS = (LeaderboardConfig(), LeaderboardConfig(method="elo"), LeaderboardConfig(method="bayes"))
