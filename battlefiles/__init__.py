"""Battle files, read the same way everywhere: no Django, no NumPy.

The database import (:mod:`arena.transfer`) and the rating CLI (``python -m leaderboard.ratings``) both
read pairwise battle files through :func:`read_battle_file`, so that they count the same battles from
the same file (self-battles skipped and counted, rows without ``anony`` anonymous, rows without a
time accepted). :mod:`battlefiles.style` is the one place style counts are computed and
:mod:`battlefiles.categories` the one place LMArena's category tags are derived.
"""
from __future__ import annotations

from .categories import CATEGORY_NAMES, category_label, language_tag, release_tags, site_tags
from .readers import FORMATS, BattleFileError, BattleRows, detect_format, raw_rows, read_battle_file
from .records import OUTCOME_CODES, WINNERS, FileBattle, pairwise_row
from .style import STYLE_FEATURES, StyleCounts, conversation_style_counts, metadata_style_counts, text_style_counts

__all__ = [
    "CATEGORY_NAMES",
    "FORMATS",
    "OUTCOME_CODES",
    "STYLE_FEATURES",
    "WINNERS",
    "BattleFileError",
    "BattleRows",
    "FileBattle",
    "StyleCounts",
    "category_label",
    "conversation_style_counts",
    "detect_format",
    "language_tag",
    "metadata_style_counts",
    "pairwise_row",
    "raw_rows",
    "read_battle_file",
    "release_tags",
    "site_tags",
    "text_style_counts",
]
