"""The 'pool' response source, the 'none' kind, and how ``source_for`` treats stored configs."""
from __future__ import annotations

import pytest

from arena.models import Contender, PoolResponse
from arena.services import prompt_get_or_create
from arena.sources import LIVE_KINDS, GenerationParams, SourceConfigError, source_for

pytestmark = pytest.mark.django_db

QUESTION = "Why is the sky blue?"


@pytest.fixture
def pooled() -> tuple[Contender, Contender]:
    alpha = Contender.objects.create(name="alpha", source_kind="pool")
    beta = Contender.objects.create(name="beta", source_kind="pool")
    sky = prompt_get_or_create(text=QUESTION)
    PoolResponse.objects.create(contender=alpha, prompt=sky, text="Rayleigh scattering.", token_count=3)
    other = prompt_get_or_create(text="What is a prime number?")
    PoolResponse.objects.create(contender=beta, prompt=other, text="Divisible by 1 and itself.")
    return alpha, beta


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_the_pool_answers_its_prompt_whole(pooled):
    alpha, _ = pooled
    pieces: list[str] = []
    src = source_for(alpha)
    assert src.can_answer(ask(QUESTION))
    result = src.generate(ask(QUESTION), GenerationParams(max_tokens=1, temperature=2.0, seed=1), pieces.append)
    assert (result.text, result.token_count, result.error) == ("Rayleigh scattering.", 3, "")
    assert pieces == ["Rayleigh scattering."]


def test_the_prompt_matches_after_whitespace_and_unicode_normalisation(pooled):
    alpha, _ = pooled
    assert source_for(alpha).can_answer(ask("  Why is   the sky\nblue? "))


def test_the_pool_refuses_prompts_it_has_no_answer_to(pooled):
    alpha, beta = pooled
    assert not source_for(alpha).can_answer(ask("What is a prime number?"))   # beta's prompt, not alpha's
    assert not source_for(beta).can_answer(ask(QUESTION))
    result = source_for(alpha).generate(ask("Something new"), GenerationParams())
    assert not result.ok and result.text == "" and result.error == "no pre-generated answer to this prompt"


@pytest.mark.parametrize("conversation", [
    [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "Rayleigh scattering."},
     {"role": "user", "content": QUESTION}],
    [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": QUESTION}],
    [],
])
def test_the_pool_refuses_anything_but_a_single_user_message(pooled, conversation):
    alpha, _ = pooled
    src = source_for(alpha)
    assert not src.can_answer(conversation)
    assert src.generate(conversation, GenerationParams()).error == \
        "pre-generated answers exist only for single-turn prompts"


def test_a_contender_without_a_source_answers_nothing(db):
    imported = Contender.objects.create(name="imported-only")   # source_kind defaults to none
    src = source_for(imported)
    assert not src.can_answer(ask(QUESTION))
    assert src.generate(ask(QUESTION), GenerationParams()).error == "this contender has no response source"


def test_a_bad_stored_config_is_refused_naming_the_key(db):
    broken = Contender.objects.create(name="broken", source_kind="openai", source_config={"model": "m"})
    with pytest.raises(SourceConfigError) as failure:
        source_for(broken)
    assert failure.value.field == "source_config.base_url" and failure.value.message == "required"
    assert failure.value.status == 400


def test_live_kinds_are_the_ones_that_answer_typed_prompts():
    assert set(LIVE_KINDS) == {"openai", "transformers"}
