"""Prompt rendering for training: exactly the format the arena serves a local model in. No Django here.

A tuned model answers in the arena through ``arena.sources.local_transformers``, whose ``encode`` renders a
conversation with the tokenizer's chat template (``add_generation_prompt=True``) when it has one, else as
``User: ...`` / ``Assistant:`` lines (``plain_prompt``). Training on any other format would teach the model a
prompt it never sees when it is served, so :func:`plain_prompt` and :func:`encode` below are copies of those
two functions (that package imports Django, so it cannot be imported here); ``tests/trainer/test_train.py``
checks that both render identically, token for token.

A training sequence is then ``prompt ids + response ids + EOS``: the prompt exactly as served, and the
response tokenised on its own, as the served model produces it token by token after the prompt, ending in
the EOS token that stops generation.
"""
from __future__ import annotations

from typing import Any

Messages = list[dict[str, str]]

_ROLE_NAMES = {"system": "System", "user": "User", "assistant": "Assistant"}


def plain_prompt(messages: Messages) -> str:
    """The conversation as ``User: ...`` / ``Assistant: ...`` lines, for tokenizers without a chat template."""
    lines = [f"{_ROLE_NAMES[m['role']]}: {m['content']}" for m in messages]
    return "\n".join(lines) + "\nAssistant:"


def encode(tokenizer: Any, messages: Messages) -> Any:
    """Token ids and attention mask for the conversation, with the model's chat template when it has one."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True,
                                             return_tensors="pt")
    return tokenizer(plain_prompt(messages), return_tensors="pt")


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
