"""Each option list is defined once, in the rating core; every front door offers and refuses the same values."""
from __future__ import annotations

import json

import pytest

from config.errors import ValidationFailed
from leaderboard.config import LeaderboardConfig
from leaderboard.models import Method
from leaderboard.ratings import CI_METHODS, METHODS, TIE_MODES, FitOptionError, check_fit_options
from leaderboard.ratings.__main__ import build_parser


def _choices(option: str) -> tuple[str, ...]:
    action = next(a for a in build_parser()._actions if option in a.option_strings)
    return tuple(action.choices)


def test_the_model_the_cli_and_the_schema_offer_the_cores_lists(client, db):
    assert tuple(Method.values) == METHODS
    assert (_choices("--method"), _choices("--ties"), _choices("--ci")) == (METHODS, TIE_MODES, CI_METHODS)
    schema = json.loads(client.get("/api/schema/", HTTP_ACCEPT="application/json").content)
    parameters = {p["name"]: p for p in schema["paths"]["/api/v1/leaderboard"]["get"]["parameters"]}
    # drf-spectacular sorts an enum; the set is what a client may send.
    assert set(parameters["method"]["schema"]["enum"]) == set(METHODS)
    assert set(parameters["ties"]["schema"]["enum"]) == set(TIE_MODES)
    assert set(parameters["ci"]["schema"]["enum"]) == set(CI_METHODS)


@pytest.mark.parametrize(
    ("options", "field"),
    [({"method": "glicko"}, "method"), ({"ties": "thirds"}, "ties"), ({"ci": "jackknife"}, "ci"),
     ({"method": "pl", "ties": "davidson"}, "ties"), ({"ci": "bootstrap", "bootstrap": 0}, "bootstrap")],
)
def test_the_configuration_refuses_what_the_fit_refuses_naming_the_same_field(options, field):
    full = {"method": "bt", "ties": "half", "ci": "bootstrap", "bootstrap": 100} | options
    with pytest.raises(FitOptionError) as core:
        check_fit_options(**full)
    with pytest.raises(ValidationFailed) as config:
        LeaderboardConfig(**options)
    assert core.value.field == config.value.field == field
    assert config.value.message == core.value.message
