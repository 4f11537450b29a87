"""Preference records for training: reading the JSONL, tokenising, choosing what a loss uses, batching. No Django.

Records (one JSON object per line, as ``trainer.datasets`` writes them):

- pairwise ``{"prompt", "chosen", "rejected", "p" (default 1), "tie" (default false), "vote_ids"}``;
- K-wise ``{"prompt", "responses": [2..6 str], "ranking": [[int, ...], ...], "vote_ids"}``: ordered groups of
  indices, best first, naming every index once; answers in one group tie.

``prompt`` is a string (one user turn) or a list of ``{"role", "content"}`` messages ending with a user turn.
Keys other than these are ignored. A pairwise record with ``p < 0.5`` is read with chosen and rejected swapped
(``p`` is the probability that ``chosen`` is preferred), so that ``chosen`` is always the favoured side.

Every record becomes an :class:`Example`: the prompt's token ids once (rendered as served, ``trainer.chat``) and
the token ids of each response (``[chosen, rejected]`` for a pair), plus the rank group of each response
(0 = best). What each loss uses (:func:`select_for_loss`):

- ``dpo``, ``robust_dpo``, ``ipo``: decisive pairs; tie records and split records (``p`` = 0.5) are dropped and
  counted; ``p`` is otherwise not used (hard labels).
- ``soft_dpo``: every pair, with ``p`` as the target (ties: ``p`` = 0.5).
- ``rao_kupper``: decisive pairs and tie records; split records that are not ties are dropped and counted.
- ``plackett_luce``, ``lipo``: K-wise records, and pairs as K = 2 rankings (a tie or split pair is one group;
  ``p`` is otherwise not used); rankings with every answer in one group carry no information and are dropped
  and counted.
- ``pro``: the same, but all-tied rankings are kept (the SFT term still uses them).

A K-wise record given to a pairwise loss is an error naming its line (it is not silently expanded into pairs:
which pairs to make is the dataset builder's choice, ``trainer.datasets`` mode ``all_pairs``).

Batching (:func:`plan_epoch`): the records' order is shuffled per epoch from ``(seed, epoch)``; the shuffled list
is cut into pools of 50 batches; each pool is sorted by length and cut into batches (so a batch holds records of
similar length and pads little); the batches are shuffled again. Under several processes a planned batch is
the *global* batch: process ``r`` of ``W`` takes its items ``r::W`` (:func:`shard`).
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .chat import Messages, as_messages, prompt_ids, response_ids

MAX_K = 6
POOL_BATCHES = 50
ROLES = frozenset({"system", "user", "assistant"})


class DataError(ValueError):
    """A bad record; ``line`` is its 1-based line number in the file."""

    def __init__(self, message: str, *, path: str | Path, line: int | None = None) -> None:
        super().__init__(message)
        self.path = str(path)
        self.line = line
        self.message = message

    def __str__(self) -> str:
        where = f"{self.path} line {self.line}" if self.line is not None else self.path
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class Record:
    """One parsed line: the prompt and the responses, with each response's rank group (0 = best)."""

    line: int
    kind: str                    # "pairwise" | "ranking"
    messages: Messages
    responses: tuple[str, ...]   # pairwise: (chosen, rejected)
    group: tuple[int, ...]       # pairwise: (0, 1), or (0, 0) for a tie
    p: float = 1.0               # pairwise: probability that chosen is preferred, >= 0.5 after reading
    tie: bool = False            # pairwise: the record is a tie


@dataclass
class Example:
    """One tokenised record, as a training or evaluation item."""

    index: int                   # position in the file's records (the reference cache is in this order)
    prompt: list[int]
    responses: list[list[int]]
    group: list[int]
    p: float
    tie: bool
    ref: list[float] | None = None   # reference log-prob of each response, once known

    @property
    def length(self) -> int:
        """Length of its longest row (prompt + longest response): what a batch pads to."""
        return len(self.prompt) + max(len(r) for r in self.responses)


@dataclass
class TokenizeStats:
    records: int = 0
    truncated: int = 0
    tokens: int = 0


# ------------------------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------------------------

def read_records(path: str | Path) -> list[Record]:
    """Parse and check every line of a JSONL file.

    Raises
    ------
    DataError
        Naming the first bad line.
    """
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise DataError(f"not valid JSON: {exc.msg}", path=path, line=number) from exc
            try:
                records.append(_record(obj, number))
            except ValueError as exc:
                raise DataError(str(exc), path=path, line=number) from exc
    if not records:
        raise DataError("holds no records", path=path)
    return records


def _record(obj: Any, line: int) -> Record:
    if not isinstance(obj, dict):
        raise ValueError("a record must be a JSON object")
    messages = _messages(obj.get("prompt"))
    if "vote_ids" in obj and not (isinstance(obj["vote_ids"], list) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in obj["vote_ids"])):
        raise ValueError("'vote_ids' must be a list of integers")
    if "responses" in obj or "ranking" in obj:
        if "chosen" in obj or "rejected" in obj:
            raise ValueError("a record is either pairwise (chosen, rejected) or K-wise (responses, ranking), not both")
        responses = obj.get("responses")
        if not isinstance(responses, list) or not all(isinstance(r, str) for r in responses):
            raise ValueError("'responses' must be a list of strings")
        k = len(responses)
        if not 2 <= k <= MAX_K:
            raise ValueError(f"'responses' must hold 2 to {MAX_K} answers, got {k}")
        ranking = obj.get("ranking")
        if not isinstance(ranking, list) or not ranking or not all(
                isinstance(g, list) and g and all(isinstance(i, int) and not isinstance(i, bool) for i in g)
                for g in ranking):
            raise ValueError("'ranking' must be a non-empty list of non-empty lists of indices")
        if sorted(i for g in ranking for i in g) != list(range(k)):
            raise ValueError(f"'ranking' must name every index 0..{k - 1} exactly once, got {ranking}")
        group = [0] * k
        for rank, members in enumerate(ranking):
            for i in members:
                group[i] = rank
        return Record(line=line, kind="ranking", messages=messages, responses=tuple(responses), group=tuple(group))
    for key in ("chosen", "rejected"):
        if not isinstance(obj.get(key), str):
            raise ValueError(f"'{key}' must be a string" if key in obj else f"'{key}' is missing")
    p = obj.get("p", 1.0)
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
        raise ValueError(f"'p' must be a number in [0, 1], got {json.dumps(p)}")
    tie = obj.get("tie", False)
    if not isinstance(tie, bool):
        raise ValueError(f"'tie' must be a boolean, got {json.dumps(tie)}")
    chosen, rejected, p = obj["chosen"], obj["rejected"], float(p)
    if p < 0.5:                          # chosen is always the favoured side
        chosen, rejected, p = rejected, chosen, 1.0 - p
    if tie:
        p = 0.5
    level = (0, 0) if p == 0.5 else (0, 1)
    return Record(line=line, kind="pairwise", messages=messages, responses=(chosen, rejected), group=level,
                  p=p, tie=tie)


def _messages(prompt: Any) -> Messages:
    if isinstance(prompt, str):
        if not prompt:
            raise ValueError("'prompt' is empty")
        return as_messages(prompt)
    if isinstance(prompt, list) and prompt and all(
            isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str) for m in prompt):
        if prompt[-1]["role"] != "user":
            raise ValueError("a 'prompt' conversation must end with a user message")
        return as_messages(prompt)
    raise ValueError("'prompt' must be a string or a list of {role, content} messages")


# ------------------------------------------------------------------------------------------------------------
# Tokenising and selecting
# ------------------------------------------------------------------------------------------------------------

def tokenize(records: Sequence[Record], tokenizer: Any, *, max_length: int) -> tuple[list[Example], TokenizeStats]:
    """Token ids for each record: the prompt once, each response after it, within ``max_length``.

    A record whose prompt plus longest response exceeds ``max_length`` keeps the *end* of its prompt (at most
    half of ``max_length`` when the response needs the rest), then its responses are cut to fit.
    """
    stats = TokenizeStats(records=len(records))
    examples = []
    cache: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        key = json.dumps(record.messages)
        if (prompt := cache.get(key)) is None:
            prompt = cache[key] = prompt_ids(tokenizer, record.messages)
        responses = [response_ids(tokenizer, text) for text in record.responses]
        longest = max(len(r) for r in responses)
        if len(prompt) + longest > max_length:
            stats.truncated += 1
            keep = max(max_length - longest, max_length // 2)
            if len(prompt) > keep:
                prompt = prompt[-keep:]
            responses = [r[:max_length - len(prompt)] for r in responses]
        stats.tokens += len(prompt) * len(responses) + sum(len(r) for r in responses)
        examples.append(Example(index=index, prompt=list(prompt), responses=responses, group=list(record.group),
                                p=record.p, tie=record.tie))
    return examples, stats


def select_for_loss(records: Sequence[Record], examples: Sequence[Example], loss: str, *,
                    path: str | Path) -> tuple[list[Example], Counter[str]]:
    """The examples ``loss`` trains on, and counts of what was dropped (see the module docstring).

    Raises
    ------
    DataError
        When a pairwise loss meets a K-wise record.
    """
    from .config import PAIRWISE_LOSSES

    kept: list[Example] = []
    dropped: Counter[str] = Counter()
    for record, example in zip(records, examples, strict=True):
        undecided = len(set(record.group)) == 1
        if loss in PAIRWISE_LOSSES:
            if record.kind != "pairwise":
                raise DataError(f"a K-wise record (responses, ranking), but loss '{loss}' takes pairwise records "
                                "(chosen, rejected); build the dataset in mode all_pairs, or use plackett_luce, "
                                "lipo or pro", path=path, line=record.line)
            if loss in ("dpo", "robust_dpo", "ipo") and undecided:
                dropped["ties" if record.tie else "split"] += 1
                continue
            if loss == "rao_kupper" and undecided and not record.tie:
                dropped["split"] += 1
                continue
        elif undecided and loss != "pro":
            dropped["ties"] += 1
            continue
        kept.append(example)
    return kept, dropped


# ------------------------------------------------------------------------------------------------------------
# Batching
# ------------------------------------------------------------------------------------------------------------

def plan_epoch(lengths: Sequence[int], batch_size: int, *, seed: int, epoch: int,
               pool_batches: int = POOL_BATCHES) -> list[list[int]]:
    """Length-bucketed batches of item indices for one epoch, the same for every process.

    Parameters
    ----------
    lengths : sequence of int
        Each item's padded length (:attr:`Example.length`).
    batch_size : int
        Items per (global) batch.
    seed, epoch : int
        The order depends on these only.
    pool_batches : int
        Batches per sorting pool: larger pads less, smaller keeps more randomness.

    Returns
    -------
    list of list of int
        Batches in training order; every item appears once.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    batches: list[list[int]] = []
    pool = batch_size * pool_batches
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool].tolist(), key=lambda i: lengths[i])
        batches.extend(chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches)).tolist()]


def shard(batch: Sequence[int], rank: int, world_size: int) -> list[int]:
    """This process's part of a global batch (interleaved, so every part holds similar lengths)."""
    return list(batch[rank::world_size])


@dataclass
class Batch:
    """The rows of one forward pass: every response of every example, each after its prompt, right-padded."""

    input_ids: torch.Tensor       # (R, T) long
    attention_mask: torch.Tensor  # (R, T) long
    loss_mask: torch.Tensor       # (R, T) bool: True on response tokens
    slot: torch.Tensor            # (R,) long: row r holds slot (b, k) = divmod(slot[r], K)
    mask: torch.Tensor            # (B, K) bool: slot exists
    group: torch.Tensor           # (B, K) long rank group, 0 = best (padded slots: K)
    p: torch.Tensor               # (B,) float: probability that slot 0 beats slot 1 (pairs)
    tie: torch.Tensor             # (B,) bool
    ref: torch.Tensor | None      # (B, K) float reference log-probs (0 on padded slots), when known
    tokens: int                   # real (non-pad) tokens in the forward

    @property
    def size(self) -> int:
        return self.mask.shape[0]

    def to(self, device: torch.device) -> Batch:
        move = dict(non_blocking=device.type == "cuda")
        return Batch(input_ids=self.input_ids.to(device, **move), attention_mask=self.attention_mask.to(device, **move),
                     loss_mask=self.loss_mask.to(device, **move), slot=self.slot.to(device, **move),
                     mask=self.mask.to(device, **move), group=self.group.to(device, **move),
                     p=self.p.to(device, **move), tie=self.tie.to(device, **move),
                     ref=self.ref.to(device, **move) if self.ref is not None else None, tokens=self.tokens)


def collate(examples: Sequence[Example], *, pad_id: int) -> Batch:
    """One batch: all responses of all examples as rows of a single forward pass, padded to the longest row."""
    if not examples:
        raise ValueError("collate: no examples")
    k = max(len(e.responses) for e in examples)
    rows = [(e.prompt, r) for e in examples for r in e.responses]
    slots = [b * k + j for b, e in enumerate(examples) for j in range(len(e.responses))]
    t = max(len(prompt) + len(resp) for prompt, resp in rows)
    ids = np.full((len(rows), t), pad_id, dtype=np.int64)
    attention = np.zeros((len(rows), t), dtype=np.int64)
    loss_mask = np.zeros((len(rows), t), dtype=bool)
    for r, (prompt, resp) in enumerate(rows):
        n, m = len(prompt), len(resp)
        ids[r, :n] = prompt
        ids[r, n:n + m] = resp
        attention[r, :n + m] = 1
        loss_mask[r, n:n + m] = True
    mask = np.zeros((len(examples), k), dtype=bool)
    group = np.full((len(examples), k), k, dtype=np.int64)
    ref = np.zeros((len(examples), k), dtype=np.float32)
    for b, e in enumerate(examples):
        mask[b, :len(e.responses)] = True
        group[b, :len(e.group)] = e.group
        if e.ref is not None:
            ref[b, :len(e.ref)] = e.ref
    have_ref = all(e.ref is not None for e in examples)
    return Batch(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(attention),
                 loss_mask=torch.from_numpy(loss_mask), slot=torch.tensor(slots, dtype=torch.long),
                 mask=torch.from_numpy(mask), group=torch.from_numpy(group),
                 p=torch.tensor([e.p for e in examples], dtype=torch.float32),
                 tie=torch.tensor([e.tie for e in examples], dtype=torch.bool),
                 ref=torch.from_numpy(ref) if have_ref else None, tokens=int(attention.sum()))
