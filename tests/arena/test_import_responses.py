"""``manage.py import_responses``: pre-generated answers for the pool source, all or nothing."""
from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from arena.models import Contender, PoolResponse, Prompt
from arena.sources import GenerationParams, source_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def pool_contenders() -> None:
    Contender.objects.create(name="alpha", source_kind="pool")
    Contender.objects.create(name="beta", source_kind="pool")


def run(tmp_path: Path, lines: list[str | dict]) -> str:
    path = tmp_path / "answers.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    out = StringIO()
    call_command("import_responses", str(path), stdout=out)
    return out.getvalue()


ROWS = [
    {"prompt": "Why is the sky blue?", "model": "alpha", "response": "Rayleigh scattering.", "category": "science",
     "language": "en", "token_count": 3},
    {"prompt": "Why is the sky blue?", "model": "beta", "response": "Because of the air."},
    {"prompt": "What is 2 + 2?", "model": "alpha", "response": "4"},
]


def test_answers_are_imported_and_served_by_the_pool(tmp_path, pool_contenders):
    out = run(tmp_path, [*ROWS[:2], "", ROWS[2]])   # blank lines are skipped
    assert "3 answers read: 3 created, 0 updated, 0 unchanged; 2 new prompts" in out
    sky = Prompt.objects.get(text="Why is the sky blue?")
    assert (sky.category, sky.language) == ("science", "en")
    assert PoolResponse.objects.get(prompt=sky, contender__name="alpha").token_count == 3
    alpha = Contender.objects.get(name="alpha")
    result = source_for(alpha).generate([{"role": "user", "content": "Why is the sky blue?"}], GenerationParams())
    assert result.text == "Rayleigh scattering."


def test_importing_again_updates_changed_texts_only(tmp_path, pool_contenders):
    run(tmp_path, ROWS)
    changed = [{**ROWS[0], "response": "Short blue wavelengths scatter more."}, *ROWS[1:]]
    out = run(tmp_path, changed)
    assert "3 answers read: 0 created, 1 updated, 2 unchanged; 0 new prompts" in out
    assert PoolResponse.objects.get(contender__name="alpha", prompt__text="Why is the sky blue?").text == \
        "Short blue wavelengths scatter more."
    assert PoolResponse.objects.count() == 3


def test_bad_lines_are_named_and_nothing_is_imported(tmp_path, pool_contenders):
    lines = [ROWS[0], "{not json", {"prompt": "p", "model": "alpha"}, {"prompt": "p", "model": "alpha",
                                                                       "response": "r", "token_count": -1}, "[1, 2]"]
    with pytest.raises(CommandError) as failure:
        run(tmp_path, lines)
    message = str(failure.value)
    assert "line 2: malformed JSON" in message
    assert "line 3: response: missing" in message
    assert "line 4: token_count: must be a whole number of at least 0" in message
    assert "line 5: not a JSON object" in message
    assert "nothing was imported" in message
    assert not PoolResponse.objects.exists() and not Prompt.objects.exists()


def test_an_unknown_model_fails_the_whole_file(tmp_path, pool_contenders):
    with pytest.raises(CommandError) as failure:
        run(tmp_path, [*ROWS, {"prompt": "Hi", "model": "gamma", "response": "Hello"}])
    assert "line 4: unknown model 'gamma'" in str(failure.value)
    assert not PoolResponse.objects.exists() and not Prompt.objects.exists()


def test_two_answers_of_one_model_to_one_prompt_are_refused(tmp_path, pool_contenders):
    with pytest.raises(CommandError, match="line 4: a second answer of 'alpha' to the prompt of line 1"):
        run(tmp_path, [*ROWS, {**ROWS[0], "prompt": "Why is  the sky blue?", "response": "Other."}])
    assert not PoolResponse.objects.exists()


def test_answers_of_a_contender_with_another_source_are_stored_with_a_note(tmp_path, pool_contenders):
    Contender.objects.create(name="live", source_kind="openai",
                             source_config={"base_url": "http://127.0.0.1:1/v1", "model": "m"})
    out = run(tmp_path, [{"prompt": "Hi", "model": "live", "response": "Hello"}])
    assert "not served: live" in out
    assert PoolResponse.objects.filter(contender__name="live").exists()
