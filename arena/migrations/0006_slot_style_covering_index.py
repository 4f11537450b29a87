"""A covering index of the slots' style counts, for style-control refits (Postgres only).

``leaderboard.selectors.pair_battles_with_style`` joins each counted vote to its two slots and reads
their four style counts. Without this index Postgres reads the whole slot table twice, responses and
conversations included (431 MB for 200,000 battles with short answers, ~0.8 s of a refit); with it,
an index-only scan of ~22 MB per side (``benchmarks/refit_style.py``). Partial: slots without counts
(imports without text) cost nothing. Index-only scans need the visibility map, which (auto)vacuum
keeps; a refit right after a bulk import without it still works, at the old speed.

Not declared in ``BattleSlot.Meta.indexes``: SQLite has no INCLUDE and the demo does not need it, and
the ORM never names it. Built CONCURRENTLY so that new battles are not blocked on a large table.
"""
from __future__ import annotations

from django.db import migrations

CREATE = """
CREATE INDEX CONCURRENTLY IF NOT EXISTS slot_style_covering ON arena_battleslot (battle_id, position)
    INCLUDE (style_tokens, style_headers, style_lists, style_bold) WHERE style_tokens IS NOT NULL
"""
DROP = "DROP INDEX CONCURRENTLY IF EXISTS slot_style_covering"


def _run_on_postgres(sql: str):  # type: ignore[no-untyped-def]
    def run(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction
    dependencies = [("arena", "0005_battle_facts")]
    operations = [migrations.RunPython(_run_on_postgres(CREATE), _run_on_postgres(DROP))]
