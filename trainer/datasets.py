"""Preference records from plain vote rows: the pure core of the preference datasets (no Django).

One ``VoteRow`` per vote goes in (prompt text, the response text and contender of every battle position,
the verdict); records come out, ready to be written as canonical JSONL and hashed.

Record shapes
-------------
Pairwise (a pairwise vote, or a pair a K-wise vote orders)::

    {"prompt": str, "chosen": str, "rejected": str, "p": float, "tie": bool, "vote_ids": [int, ...]}

``p`` is the probability that ``chosen`` is preferred to ``rejected`` (a soft label, >= 0.5). ``tie`` is true
only when every vote behind the record is a tie (then ``p`` = 0.5 and chosen / rejected are in text order).

Ranking (K-wise votes in mode ``rankings``)::

    {"prompt": str, "responses": [str, ...], "ranking": [[int, ...], ...], "vote_ids": [int]}

``responses`` are listed best first; ``ranking`` holds indices into ``responses`` as ordered groups, best
first, and answers in one group tie. A best-of-K vote is ``[[0], [1, ..., K-1]]``: the rest are unordered.

Rules
-----
- Pairwise votes: ``a`` / ``b`` give a record with ``p`` = 1; ``tie`` gives a tie record when ``keep_ties``,
  else it is dropped and counted; ``both_bad`` is dropped and counted.
- K-wise votes (best_of_k, ranking) by ``mode``: ``rankings`` (one ranking record per vote; a ranking with all
  answers in one group says nothing and is treated as a tie), ``all_pairs`` (every pair the ranking orders; the
  pairs inside a group are ties; for best of K the pairs among the rest say nothing and are not emitted),
  ``best_vs_rest`` (the pairs of ``all_pairs`` that involve an answer of the top group), ``curriculum`` (the
  pairs of ``all_pairs``, pairwise votes included, ordered easy to hard: the largest absolute rating gap
  between the two contenders first, as in Curry-DPO; pairs with a contender without a rating go last; a
  merged pair takes its contenders from its earliest vote).
- Repeated comparisons of one prompt and one pair of response texts merge into one record: wins count 1 for
  the winner; ties (kept only with ``keep_ties``) count 1/2 for each side. ``p`` = score(chosen) /
  comparisons, with ``chosen`` the side with the larger score (equal scores: the text that sorts first).
  ``vote_ids`` lists every vote merged. Ranking records are never merged (one per vote).
- A pair whose two responses are the same text is dropped and counted (it cannot teach a preference).
- Multi-turn votes (more than one user turn) are skipped and counted: ``prompt`` is always one string.
  Votes with an empty prompt or an empty response are skipped and counted.

Canonical JSONL: one ``json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"))`` per
line, each followed by ``"\\n"``, UTF-8. Records are sorted by their smallest vote id, then by chosen and then
rejected text (for the several pairs of one K-wise vote); in ``curriculum`` mode the curriculum order (ties in
the gap broken the same way) is the file order. The same rows give the same bytes whatever order they come in.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MODES = ("rankings", "all_pairs", "best_vs_rest", "curriculum")
KINDS = ("pairwise", "best_of_k", "ranking")
OUTCOMES = ("a", "b", "tie", "both_bad")

Ranking = tuple[tuple[int, ...], ...]
Record = dict[str, Any]

COUNT_KEYS = ("rows", "skipped_multi_turn", "skipped_no_text", "both_bad_dropped", "ties_dropped",
              "identical_dropped", "merged", "votes_used", "records")


class DatasetInputError(ValueError):
    """A row or an argument the core cannot use; ``field`` names it."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(f"{field}: {message}")
        self.message = message
        self.field = field


@dataclass(frozen=True)
class VoteRow:
    """One vote as the core needs it.

    Parameters
    ----------
    vote_id : int
        The vote's id (records list the ids they rest on; the file is ordered by them).
    kind : str
        ``pairwise``, ``best_of_k`` or ``ranking``.
    prompt : str
        The prompt text (empty: the vote is skipped).
    responses : tuple of str
        The response text at each battle position (any empty: the vote is skipped).
    models : tuple of str
        The contender at each battle position (for the curriculum's rating gaps).
    outcome : str, optional
        Pairwise votes: ``a``, ``b``, ``tie`` or ``both_bad`` (position 0 is A).
    best : int, optional
        Best-of-K votes: the best position.
    ranking : tuple of tuple of int, optional
        Ranking votes: groups of positions, best first; positions in one group tie.
    user_turns : int
        User turns in the conversation; more than one: skipped.
    """

    vote_id: int
    kind: str
    prompt: str
    responses: tuple[str, ...]
    models: tuple[str, ...]
    outcome: str | None = None
    best: int | None = None
    ranking: Ranking | None = None
    user_turns: int = 1


@dataclass
class Built:
    """What ``build_records`` made: the records in file order, what happened to the votes, the votes used."""

    records: list[Record]
    counts: dict[str, int]
    vote_ids: list[int]


@dataclass
class _PairGroup:
    """Comparisons of one prompt and one unordered pair of response texts."""

    prompt: str
    texts: tuple[str, str]                  # sorted
    wins: list[int] = field(default_factory=lambda: [0, 0])
    ties: int = 0
    vote_ids: set[int] = field(default_factory=set)
    first_vote: int = 0
    first_models: tuple[str, str] = ("", "")


def build_records(rows: Iterable[VoteRow], *, mode: str = "all_pairs", keep_ties: bool = False,
                  ratings: Mapping[str, float] | None = None) -> Built:
    """Preference records from vote rows, in canonical file order.

    Parameters
    ----------
    rows : iterable of VoteRow
        The votes; their order does not matter.
    mode : str
        How K-wise votes become records: ``rankings``, ``all_pairs``, ``best_vs_rest`` or ``curriculum``.
    keep_ties : bool
        Keep tie comparisons as ``tie: true`` records (and as 1/2 in merged soft labels); else drop and count.
    ratings : mapping of str to float, optional
        Contender ratings; ``curriculum`` orders pairs by their absolute difference.

    Returns
    -------
    Built
        ``records`` (file order), ``counts`` (keys ``COUNT_KEYS``), ``vote_ids`` (sorted ids of the votes
        that some record rests on).

    Raises
    ------
    DatasetInputError
        For an unknown mode, or a row whose verdict does not fit its kind and positions.
    """
    if mode not in MODES:
        raise DatasetInputError(f"must be one of {', '.join(MODES)}", field="mode")
    counts = dict.fromkeys(COUNT_KEYS, 0)
    groups: dict[tuple[str, str, str], _PairGroup] = {}
    rankings: list[Record] = []
    for row in rows:
        counts["rows"] += 1
        _check_row(row)
        if row.user_turns > 1:
            counts["skipped_multi_turn"] += 1
            continue
        if not row.prompt or not all(row.responses):
            counts["skipped_no_text"] += 1
            continue
        if row.kind == "pairwise":
            if row.outcome == "both_bad":
                counts["both_bad_dropped"] += 1
                continue
            winner = {"a": 0, "b": 1}.get(row.outcome or "")
            _observe(groups, counts, row, 0, 1, winner, keep_ties)
            continue
        ranking = _ranking_of(row)
        if mode == "rankings":
            if len(ranking) == 1 and not keep_ties:   # every answer in one group: a K-wise tie
                counts["ties_dropped"] += 1
                continue
            rankings.append(_ranking_record(row, ranking))
            continue
        for i, j, winner in _pairs(row, ranking, best_vs_rest=(mode == "best_vs_rest")):
            _observe(groups, counts, row, i, j, winner, keep_ties)
    pairs = [(group, _pair_record(group)) for group in groups.values()]
    if mode == "curriculum":
        gaps = ratings or {}
        pairs.sort(key=lambda item: (*_gap_key(item[0].first_models, gaps), *_order_key(item[1])))
        records = [record for _, record in pairs]
    else:
        records = [record for _, record in pairs] + rankings
        records.sort(key=_order_key)
    used = sorted({vote_id for record in records for vote_id in record["vote_ids"]})
    counts["votes_used"] = len(used)
    counts["records"] = len(records)
    return Built(records=records, counts=counts, vote_ids=used)


def _check_row(row: VoteRow) -> None:
    k = len(row.responses)
    where = f"vote {row.vote_id}"
    if row.kind not in KINDS:
        raise DatasetInputError(f"{where}: unknown kind {row.kind!r}", field="kind")
    if len(row.models) != k or k < 2:
        raise DatasetInputError(f"{where}: needs a contender for each of at least 2 responses", field="models")
    if row.kind == "pairwise" and (k != 2 or row.outcome not in OUTCOMES):
        raise DatasetInputError(f"{where}: a pairwise vote needs 2 responses and an outcome", field="outcome")
    if row.kind == "best_of_k" and (row.best is None or not 0 <= row.best < k):
        raise DatasetInputError(f"{where}: best must be a position below {k}", field="best")
    if row.kind == "ranking":
        seen = sorted(p for group in row.ranking or () for p in group)
        if seen != list(range(k)) or any(not group for group in row.ranking or ()):
            raise DatasetInputError(f"{where}: the ranking must name every position 0..{k - 1} once", field="ranking")


def _ranking_of(row: VoteRow) -> Ranking:
    if row.kind == "best_of_k":
        assert row.best is not None
        return ((row.best,), tuple(p for p in range(len(row.responses)) if p != row.best))
    assert row.ranking is not None
    return tuple(tuple(sorted(group)) for group in row.ranking)


def _ranking_record(row: VoteRow, ranking: Ranking) -> Record:
    order = [p for group in ranking for p in group]            # positions, best first
    index = {p: i for i, p in enumerate(order)}
    return {"prompt": row.prompt, "responses": [row.responses[p] for p in order],
            "ranking": [[index[p] for p in group] for group in ranking], "vote_ids": [row.vote_id]}


def _pairs(row: VoteRow, ranking: Ranking, *, best_vs_rest: bool) -> list[tuple[int, int, int | None]]:
    """(position i, position j, winner 0 for i / 1 for j / None for a tie) for each pair the vote speaks to."""
    group_of = {p: g for g, members in enumerate(ranking) for p in members}
    best_of_k = row.kind == "best_of_k"
    out = []
    k = len(row.responses)
    for i in range(k):
        for j in range(i + 1, k):
            gi, gj = group_of[i], group_of[j]
            if best_vs_rest and 0 not in (gi, gj):
                continue
            if gi == gj:
                if best_of_k:          # two answers that were not chosen: the vote says nothing about them
                    continue
                out.append((i, j, None))
            else:
                out.append((i, j, 0 if gi < gj else 1))
    return out


def _observe(groups: dict[tuple[str, str, str], _PairGroup], counts: dict[str, int], row: VoteRow,
             i: int, j: int, winner: int | None, keep_ties: bool) -> None:
    """Fold one comparison (positions i and j of ``row``) into its group."""
    text_i, text_j = row.responses[i], row.responses[j]
    if text_i == text_j:
        counts["identical_dropped"] += 1
        return
    if winner is None and not keep_ties:
        counts["ties_dropped"] += 1
        return
    flip = text_j < text_i
    texts = (text_j, text_i) if flip else (text_i, text_j)
    models = (row.models[j], row.models[i]) if flip else (row.models[i], row.models[j])
    key = (row.prompt, *texts)
    group = groups.get(key)
    if group is None:
        group = groups[key] = _PairGroup(prompt=row.prompt, texts=texts, first_vote=row.vote_id,
                                         first_models=models)
    else:
        counts["merged"] += 1
        if row.vote_id < group.first_vote:
            group.first_vote, group.first_models = row.vote_id, models
    if winner is None:
        group.ties += 1
    else:
        group.wins[winner ^ flip] += 1
    group.vote_ids.add(row.vote_id)


def _pair_record(group: _PairGroup) -> Record:
    total = group.wins[0] + group.wins[1] + group.ties
    scores = (group.wins[0] + group.ties / 2, group.wins[1] + group.ties / 2)
    chosen = 1 if scores[1] > scores[0] else 0              # equal: the text that sorts first
    return {"prompt": group.prompt, "chosen": group.texts[chosen], "rejected": group.texts[1 - chosen],
            "p": scores[chosen] / total, "tie": group.wins == [0, 0], "vote_ids": sorted(group.vote_ids)}


def _order_key(record: Record) -> tuple[int, str, str]:
    """Smallest vote id, then chosen and rejected text: a total order (the pairs that share their smallest vote
    come from one vote and one prompt, and differ in their texts; a ranking record is alone with its vote)."""
    return record["vote_ids"][0], record.get("chosen", ""), record.get("rejected", "")


def _gap_key(models: tuple[str, str], ratings: Mapping[str, float]) -> tuple[int, float]:
    a, b = ratings.get(models[0]), ratings.get(models[1])
    if a is None or b is None:
        return (1, 0.0)
    return (0, -abs(float(a) - float(b)))


# --- files ------------------------------------------------------------------------------------------------


def canonical_line(record: Record) -> str:
    """The record as one canonical JSON line, without its newline."""
    return json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def canonical_jsonl(records: Iterable[Record]) -> bytes:
    """The records as canonical JSONL bytes (UTF-8, one line each, every line ending in a newline)."""
    return "".join(canonical_line(r) + "\n" for r in records).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_jsonl(data: bytes) -> list[Record]:
    return [json.loads(line) for line in data.decode("utf-8").splitlines() if line]


def trl_records(records: Sequence[Record]) -> list[Record]:
    """TRL's ``prompt`` / ``chosen`` / ``rejected`` rows from dataset records, in the records' order.

    Pairwise records give one row each, except tie records and split ones (``p`` = 0.5: no majority), which
    TRL's preference format cannot carry. Ranking records are expanded as ``all_pairs`` (every pair in two
    different groups, better group first; pairs within a group are left out). Soft labels are not carried.
    """
    out = []
    for record in records:
        if "ranking" in record:
            responses, groups = record["responses"], record["ranking"]
            for g, better in enumerate(groups):
                for worse in groups[g + 1:]:
                    for i in better:
                        for j in worse:
                            out.append({"prompt": record["prompt"], "chosen": responses[i],
                                        "rejected": responses[j]})
        elif not record["tie"] and record["p"] > 0.5:
            out.append({"prompt": record["prompt"], "chosen": record["chosen"], "rejected": record["rejected"]})
    return out
