"""How a conversation becomes a local model's prompt. No Django here (not even through a package __init__).

One definition for the two sides that must agree: the arena's ``transformers`` source serves a model with
this prompt, and the trainer (``trainer.chat``) trains a model on it -- a model tuned on any other format
would be served a prompt it never saw.
"""
from __future__ import annotations

from typing import Any

Messages = list[dict[str, str]]

ROLE_NAMES = {"system": "System", "user": "User", "assistant": "Assistant"}


def plain_prompt(messages: Messages) -> str:
    """The conversation as ``User: ...`` / ``Assistant: ...`` lines, for tokenizers without a chat template."""
    lines = [f"{ROLE_NAMES[m['role']]}: {m['content']}" for m in messages]
    return "\n".join(lines) + "\nAssistant:"


def encode(tokenizer: Any, messages: Messages) -> Any:
    """Token ids and attention mask for the conversation, with the model's chat template when it has one."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True,
                                             return_tensors="pt")
    return tokenizer(plain_prompt(messages), return_tensors="pt")
