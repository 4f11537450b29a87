"""Style counts: FastChat's markdown rules, and LMArena's own conv_metadata on its 100 complete rows."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from battlefiles import conversation_style_counts, metadata_style_counts, pairwise_row, text_style_counts

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "lmarena" / "sample_100.jsonl"


def test_markdown_counts_follow_fastchat_rules():
    text = ("# Title\nSome **bold** words and __more bold__.\n\n## Part\n- one\n  * nested\n1. first\n2) not a list\n"
            "####### seven hashes is no header\n```python\n# a comment, not a header\n- not a list item\n```\n")
    tokens, headers, lists, bold = text_style_counts(text)
    assert (headers, lists, bold) == (2, 3, 2)
    assert tokens == len(text.split())  # code blocks still count towards the length
    # A bold span does not cross a line; an EM SPACE after "1." is not a list item (LMArena's counts agree).
    assert text_style_counts("**not\nbold**\n1.\u2003item\n")[2:] == (0, 0)


def test_conversation_counts_join_the_assistant_turns_only():
    conv = [{"role": "user", "content": "# not counted\n- no"},
            {"role": "assistant", "content": [{"type": "text", "text": "# Yes"}, {"type": "image"}]},
            {"role": "assistant", "content": "- three **b**"}]
    assert conversation_style_counts(conv) == (5, 1, 1, 1)


def test_metadata_counts_sum_the_nested_dicts_and_refuse_bad_values():
    meta = {"sum_assistant_a_tokens": 10, "header_count_a": {"h1": 1, "h2": 2, "h3": 0, "h4": 0, "h5": 0, "h6": 1},
            "list_count_a": {"ordered": 3, "unordered": 4}, "bold_count_a": {"**": 5, "__": 1}}
    assert metadata_style_counts(meta, "a") == (10, 4, 7, 6)
    assert metadata_style_counts(meta, "b") is None
    with pytest.raises(ValueError, match="bold_count_a"):
        metadata_style_counts({**meta, "bold_count_a": {"**": -1}}, "a")


def test_counts_from_text_match_lmarena_metadata_on_its_100_rows():
    battles = [pairwise_row(json.loads(line)) for line in SAMPLE.read_text().splitlines()]
    ours = np.array([conversation_style_counts(b.conversations[s]) for b in battles for s in (0, 1)], dtype=float)
    theirs = np.array([b.style[s] for b in battles for s in (0, 1)], dtype=float)
    assert ours.shape == (200, 4)
    # Headers, list items and bold spans: the same rules give the same counts on all 200 answers.
    np.testing.assert_array_equal(ours[:, 1:], theirs[:, 1:])
    # Tokens: whitespace words against LMArena's tokenizer; about half as many, but the style covariate
    # (a - b) / (a + b + 1) is a ratio, and it agrees closely.
    ratio = ours[:, 0] / theirs[:, 0]
    assert np.median(ratio) == pytest.approx(0.4769, abs=5e-4)  # words per tokenizer token, on these rows
    covariate = lambda c: (c[0::2] - c[1::2]) / (c[0::2] + c[1::2] + 1)  # noqa: E731
    assert np.corrcoef(covariate(ours[:, 0]), covariate(theirs[:, 0]))[0, 1] > 0.95
