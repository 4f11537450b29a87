"""`make demo`'s judge content: simulated votes on the pooled answers and a scripted judge whose planted biases
the audit finds."""
from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from arena.models import Vote
from judges.models import Audit, Judgment
from leaderboard.config import LeaderboardConfig
from leaderboard.selectors import counted_votes


def _call(name: str) -> str:
    out = StringIO()
    call_command(name, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_the_demo_judge_is_audited_and_its_planted_biases_show(client):
    with pytest.raises(CommandError, match="run manage\\.py seed_demo first"):
        _call("seed_demo_judge")
    _call("seed_demo")
    rated_before = counted_votes(LeaderboardConfig()).count()
    out = _call("seed_demo_judge")
    audit = Audit.objects.get()
    assert f"/judges/audits/{audit.pk}" in out and "not human votes" in out
    simulated = Vote.objects.filter(voter__key__startswith="demo-sim-")
    # Every pair (6) and triple (4) of the 4 pooled answers to each of the 24 prompts.
    assert simulated.count() == 24 * (6 + 4)
    assert counted_votes(LeaderboardConfig()).count() == rated_before   # simulated votes are never rated

    report = audit.report["judges"]["scripted-demo"]
    # Planted: position_bias 0.15, length_bias 0.8, self_preference 0.7 (family "verbose"), authority 2.0.
    assert report["position"]["first_position_rate"]["ci_low"] > 0.5
    assert report["position"]["first_position_rate"]["p_value"] < 0.01
    assert report["length"]["length_coef"]["ci_low"] > 0
    assert report["self_preference"]["self_preference"]["ci_low"] > 0
    assert report["perturbations"]["authority"]["toward_perturbed"]["ci_low"] > 0.5
    assert client.get(f"/judges/audits/{audit.pk}").status_code == 200

    made = Judgment.objects.count()
    assert "already audited" in _call("seed_demo_judge")
    assert (Judgment.objects.count(), Audit.objects.count(), simulated.count()) == (made, 1, 240)
