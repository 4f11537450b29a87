"""The 'transformers' response source on a tiny random Llama built in the test session (nothing downloaded)."""
from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
import torch

from arena.models import Contender
from arena.sources import GenerationParams, source_for
from arena.sources.local_transformers import (
    LoadedModel,
    LocalTransformersSource,
    encode,
    load_model,
    plain_prompt,
    unload_all,
)

ASK = [{"role": "user", "content": "The cat writes a short poem"}]
SEEDED = GenerationParams(max_tokens=16, temperature=1.0, seed=7)


def source(path: Path | str, **config) -> LocalTransformersSource:
    contender = Contender(name="anon", source_kind="transformers", source_config={"path": str(path), **config})
    return source_for(contender)


def test_a_local_model_answers_and_streams_its_answer(tiny_causal_lm):
    pieces: list[str] = []
    result = source(tiny_causal_lm).generate(ASK, SEEDED, pieces.append)
    assert result.ok, result.error
    assert len(pieces) >= 2 and "".join(pieces) == result.text
    assert 0 < result.token_count <= 16
    assert result.latency_ms >= 0


def test_the_same_seed_gives_the_same_text_whatever_ran_before(tiny_causal_lm):
    src = source(tiny_causal_lm)
    first = src.generate(ASK, SEEDED).text
    src.generate(ASK, GenerationParams(max_tokens=16, temperature=1.0, seed=8))   # other draws in between
    torch.rand(1000)                                                               # and use of the global RNG
    assert src.generate(ASK, SEEDED).text == first
    assert src.generate(ASK, GenerationParams(max_tokens=16, temperature=1.0, seed=99)).text != first


def test_generation_leaves_the_global_rng_alone(tiny_causal_lm):
    before = torch.get_rng_state()
    source(tiny_causal_lm).generate(ASK, SEEDED)
    assert torch.equal(torch.get_rng_state(), before)


def test_a_configured_seed_is_the_default_and_temperature_zero_is_greedy(tiny_causal_lm):
    configured = source(tiny_causal_lm, seed=7, temperature=1.0, max_tokens=16)
    assert configured.generate(ASK, GenerationParams()).text == source(tiny_causal_lm).generate(ASK, SEEDED).text
    greedy = source(tiny_causal_lm, temperature=0.0, max_tokens=10)
    texts = {greedy.generate(ASK, GenerationParams(seed=s)).text for s in (1, 2)}
    assert len(texts) == 1                     # no sampling: the seed does not matter


def test_two_sources_of_one_directory_share_one_loaded_model(tiny_causal_lm):
    first, second = source(tiny_causal_lm), source(str(tiny_causal_lm) + "/")
    assert first.load() is second.load()
    assert first.load().model is second.load().model


def test_concurrent_first_uses_load_the_model_once(tiny_causal_lm, tmp_path):
    path = shutil.copytree(tiny_causal_lm, tmp_path / "copy")   # a directory nobody has loaded yet
    loaded: list[LoadedModel] = []
    barrier = threading.Barrier(4)

    def use() -> None:
        barrier.wait()
        loaded.append(load_model(str(path)))

    threads = [threading.Thread(target=use) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loaded) == 4 and all(m is loaded[0] for m in loaded)


def test_different_models_loaded_at_once_both_load_whole(tiny_causal_lm, tmp_path):
    # Two contenders on different directories answer the same battle in parallel threads: their first loads
    # overlap. Unserialised, transformers' meta-device loading broke one of them.
    paths = [shutil.copytree(tiny_causal_lm, tmp_path / f"model-{i}") for i in range(3)]
    results: dict[int, object] = {}
    barrier = threading.Barrier(len(paths))

    def use(i: int) -> None:
        barrier.wait()
        try:
            results[i] = load_model(str(paths[i]))
        except Exception as exc:  # the test reports whatever a load raised
            results[i] = exc

    threads = [threading.Thread(target=use, args=(i,)) for i in range(len(paths))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(isinstance(r, LoadedModel) for r in results.values()), results
    reference = load_model(str(tiny_causal_lm)).model.state_dict()
    for loaded in results.values():
        state = loaded.model.state_dict()
        assert all(torch.equal(state[k], reference[k]) for k in reference)


def test_concurrent_generations_on_one_model_are_serialised_and_stay_deterministic(tiny_causal_lm):
    src = source(tiny_causal_lm)
    expected = src.generate(ASK, SEEDED).text
    results: list[str] = []

    def run() -> None:
        results.append(src.generate(ASK, SEEDED).text)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 3


def test_an_exception_from_on_delta_propagates_and_frees_the_model(tiny_causal_lm):
    src = source(tiny_causal_lm)

    def hang_up(piece: str) -> None:
        raise ConnectionAbortedError("voter left")

    with pytest.raises(ConnectionAbortedError):
        src.generate(ASK, GenerationParams(max_tokens=200, temperature=1.0, seed=7), hang_up)
    assert not src.load().lock.locked()
    assert src.generate(ASK, SEEDED).ok


def test_a_missing_directory_is_an_error_that_names_no_path(tmp_path):
    missing = tmp_path / "secret-model-dir"
    result = source(missing).generate(ASK, SEEDED)
    assert result.error == "the model's files are missing on the server"
    assert result.text == "" and "secret" not in result.error


def test_a_broken_directory_is_an_error_and_is_retried_once_fixed(tiny_causal_lm, tmp_path):
    path = tmp_path / "broken"
    path.mkdir()
    (path / "config.json").write_text("{not json")
    assert source(path).generate(ASK, SEEDED).error == "the model could not be loaded"
    shutil.rmtree(path)
    shutil.copytree(tiny_causal_lm, path)
    assert source(path).generate(ASK, SEEDED).ok   # a failed load is not cached


def test_a_conversation_is_formatted_plainly_without_a_chat_template(tiny_causal_lm):
    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Why?"}]
    assert plain_prompt(conversation) == "System: Be brief.\nUser: Hi\nAssistant: Hello.\nUser: Why?\nAssistant:"
    assert source(tiny_causal_lm).generate(conversation, SEEDED).ok


def test_the_chat_template_is_used_when_the_tokenizer_has_one(tiny_causal_lm, tmp_path):
    path = shutil.copytree(tiny_causal_lm, tmp_path / "chat")
    template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
                "{% if add_generation_prompt %}<assistant>{% endif %}")
    tokenizer = load_model(str(path)).tokenizer
    tokenizer.chat_template = template
    tokenizer.save_pretrained(path)
    unload_all()
    loaded = load_model(str(path))
    ids = encode(loaded.tokenizer, ASK)["input_ids"][0].tolist()
    assert loaded.tokenizer.decode(ids) == "<user>The cat writes a short poem\n<assistant>"
    assert source(path).generate(ASK, SEEDED).ok


@pytest.fixture(scope="module")
def lora_adapter(tiny_causal_lm, tmp_path_factory) -> Path:
    """A LoRA adapter over the tiny model with large, seeded weights (a fresh LoRA's B = 0 would change nothing)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_causal_lm, local_files_only=True)
    tuned = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                            task_type="CAUSAL_LM"))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, weight in tuned.named_parameters():
            if "lora_" in name:
                weight.copy_(torch.randn(weight.shape, generator=generator))
    path = tmp_path_factory.mktemp("lora")
    tuned.save_pretrained(path)
    return path


# peft 0.21 reads a property that transformers 5 deprecates; harmless, and not ours to fix.
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_a_peft_adapter_is_loaded_over_its_base_model(tiny_causal_lm, lora_adapter):
    from peft import PeftModel
    from safetensors.torch import load_file

    with_adapter = source(tiny_causal_lm, adapter=str(lora_adapter))
    model = with_adapter.load().model
    assert isinstance(model, PeftModel)
    saved = load_file(lora_adapter / "adapter_model.safetensors")
    lora_b = next(k for k in saved if "lora_B" in k)
    loaded = dict(model.named_parameters())
    match = next(v for k, v in loaded.items() if k.replace(".default", "").endswith(lora_b.split("base_model.")[-1]))
    assert torch.equal(match.detach().cpu(), saved[lora_b])
    base = source(tiny_causal_lm)
    assert base.load() is not with_adapter.load()   # the base model's cache entry is a separate copy
    # The adapter changes what the model computes (a random tiny model's near-uniform logits make the sampled
    # text a weak witness, so compare the logits themselves), and the source still generates with it.
    inputs = encode(base.load().tokenizer, ASK)
    with torch.no_grad():
        tuned_logits = model(**inputs).logits
        base_logits = base.load().model(**inputs).logits
    assert not torch.allclose(tuned_logits, base_logits, atol=1e-4)
    assert with_adapter.generate(ASK, SEEDED).ok


def test_a_missing_adapter_is_an_error(tiny_causal_lm, tmp_path):
    result = source(tiny_causal_lm, adapter=str(tmp_path / "nope")).generate(ASK, SEEDED)
    assert result.error == "the model's adapter files are missing on the server"
