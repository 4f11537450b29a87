"""Fixtures for the response-source tests; registered by ``pytest_plugins`` in tests/conftest.py.

- ``openai_server``: a fresh :class:`~tests.support.openai_server.OpenAIServer` per test.
- ``tiny_causal_lm``: the path of a tiny random-initialised Llama (hidden size 32, 2 layers) with a
  byte-level BPE tokenizer trained in-process, both saved with ``save_pretrained`` -- built once per
  session, nothing downloaded.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from .openai_server import OpenAIServer

SUBJECTS = ["The cat", "A model", "My friend", "The arena", "Every voter", "The server", "A small robot", "The river"]
VERBS = ["writes", "answers", "reads", "likes", "explains", "compares", "finds", "remembers"]
OBJECTS = ["a short poem", "the question", "two answers", "the weather", "a prime number", "the leaderboard",
           "a long story", "the blue sky"]
ENDINGS = [".", " today.", " again!", " slowly.", "?"]


def corpus() -> list[str]:
    """A few hundred plain sentences: enough for a tokenizer that round-trips ordinary English."""
    return [f"{s} {v} {o}{e}" for (s, v, o), e in zip(itertools.product(SUBJECTS, VERBS, OBJECTS),
                                                       itertools.cycle(ENDINGS), strict=False)]


def build_tiny_causal_lm(directory: Path, *, seed: int = 0) -> Path:
    """Save a tiny random Llama and its tokenizer in ``directory``; returns it."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(corpus(), trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                                        pad_token="<pad>")
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    with torch.random.fork_rng():   # seeded weights, without touching the RNG the rest of the session sees
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server


@pytest.fixture(scope="session")
def tiny_causal_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-llama"))
