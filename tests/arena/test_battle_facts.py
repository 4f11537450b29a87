"""What a vote writes besides itself: the battle's language, category and tags, and each slot's style counts."""
from __future__ import annotations

import pytest

from arena.models import Battle, BattleSlot, BattleTag
from arena.services import SlotInput, battle_create, voter_get_or_create

pytestmark = pytest.mark.django_db


def _battle(client, contenders, *, prompt: str, responses: list[str], category: str = "", language: str = "") -> Battle:
    voter = voter_get_or_create(key=f"user:{client.user.pk}", user=client.user)
    slots = [SlotInput(contender=c.name, response=r) for c, r in zip(contenders, responses, strict=False)]
    return battle_create(voter=voter, slots=slots, prompt_text=prompt, category=category, language=language)


def test_a_vote_stores_style_counts_and_the_tags_the_battle_supports(voter_api, contenders):
    battle = _battle(voter_api, contenders, prompt="Fix my code:\n```py\nprint(1\n```", category="coding-help",
                     language="de", responses=["# Fix\n- add `)`\n- **run** it", "Add a parenthesis."])
    assert not BattleTag.objects.exists()  # nothing before the vote: the slots may still change
    response = voter_api.post(f"/api/v1/battles/{battle.id}/vote", {"outcome": "a"}, format="json")
    assert response.status_code == 201, response.content
    battle.refresh_from_db()
    assert (battle.language, battle.category) == ("de", "coding-help")
    assert set(battle.tags.values_list("tag", flat=True)) == {"coding", "german", "coding-help"}
    counts = {s.position: (s.style_tokens, s.style_headers, s.style_lists, s.style_bold)
              for s in BattleSlot.objects.filter(battle=battle)}
    by_text = {s.position: s.response for s in battle.slots.all()}
    expected = {"# Fix\n- add `)`\n- **run** it": (8, 1, 2, 1), "Add a parenthesis.": (3, 0, 0, 0)}
    assert counts == {p: expected[text] for p, text in by_text.items()}


def test_a_category_leaderboard_counts_the_voted_battles_with_that_tag(voter_api, contenders):
    for i in range(6):
        battle = _battle(voter_api, contenders[i % 3:i % 3 + 2], prompt=f"Question {i}?", responses=["x", "y"],
                         category="trivia" if i < 4 else "", language="en")
        voter_api.post(f"/api/v1/battles/{battle.id}/vote", {"outcome": "tie"}, format="json")
    trivia = voter_api.get("/api/v1/leaderboard", {"category": "trivia", "ci": "sandwich"}).json()
    assert trivia["snapshot"]["n_votes"] == 4
    english = voter_api.get("/api/v1/leaderboard", {"category": "english", "ci": "sandwich"}).json()
    assert english["snapshot"]["n_votes"] == 6
