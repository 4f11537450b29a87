"""Prompt rendering for training: exactly the format the arena serves a local model in. No Django here.

A tuned model answers in the arena through ``arena.sources.local_transformers``, whose ``encode`` renders a
conversation with the tokenizer's chat template (``add_generation_prompt=True``) when it has one, else as
``User: ...`` / ``Assistant:`` lines (``plain_prompt``). Training on any other format would teach the model a
prompt it never sees when it is served, so both take :func:`plain_prompt` and :func:`encode` from
:mod:`arena.chat_format`, a module without Django; ``tests/trainer/test_train.py`` checks that both render
identically, token for token.

A training sequence is then ``prompt ids + response ids + EOS``: the prompt exactly as served, and the
response tokenised on its own, as the served model produces it token by token after the prompt, ending in
the EOS token that stops generation.
"""
from __future__ import annotations

from typing import Any

from arena.chat_format import Messages, encode, plain_prompt

__all__ = ["Messages", "as_messages", "encode", "plain_prompt", "prompt_ids", "response_ids"]


def as_messages(prompt: str | Messages) -> Messages:
    """A record's prompt as a conversation: a string is one user turn; a list of messages is taken as is."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": m["role"], "content": m["content"]} for m in prompt]


def prompt_ids(tokenizer: Any, messages: Messages) -> list[int]:
    """The served prompt's token ids (one conversation, no padding)."""
    return [int(t) for t in encode(tokenizer, messages)["input_ids"][0].tolist()]


def response_ids(tokenizer: Any, text: str) -> list[int]:
    """The response's token ids as generated after the prompt, ending with EOS when the tokenizer has one."""
    ids = [int(t) for t in tokenizer(text, add_special_tokens=False)["input_ids"]]
    eos = tokenizer.eos_token_id
    return [*ids, int(eos)] if eos is not None else ids
