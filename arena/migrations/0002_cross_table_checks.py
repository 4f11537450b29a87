"""Rules that span two tables, enforced by Postgres triggers.

A CHECK constraint sees one row, so "a slot's position is below its battle's K", "only a named battle
shows a model twice", and "a pairwise vote only on a K = 2 battle, cast by the voter it was served to"
need triggers. On SQLite (the demo) the
services are the only guard; CI runs on Postgres, where these are the last line behind them.
"""
from __future__ import annotations

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION arena_slot_position_below_k() RETURNS trigger AS $$
DECLARE b record;
BEGIN
    SELECT k, anonymous INTO b FROM arena_battle WHERE id = NEW.battle_id;
    IF NEW.position >= b.k THEN
        RAISE EXCEPTION 'slot position % is not below battle k %', NEW.position, b.k
            USING ERRCODE = 'check_violation', CONSTRAINT = 'slot_position_below_k';
    END IF;
    IF NEW.sample > 0 AND b.anonymous THEN
        RAISE EXCEPTION 'an anonymous battle shows each contender once'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'slot_repeat_only_named';
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER arena_slot_position_below_k BEFORE INSERT OR UPDATE ON arena_battleslot
    FOR EACH ROW EXECUTE FUNCTION arena_slot_position_below_k();

CREATE OR REPLACE FUNCTION arena_vote_matches_battle() RETURNS trigger AS $$
DECLARE b record;
BEGIN
    SELECT k, voter_id INTO b FROM arena_battle WHERE id = NEW.battle_id;
    IF (NEW.kind = 'pairwise') <> (b.k = 2) THEN
        RAISE EXCEPTION 'a % vote does not fit a battle of k %', NEW.kind, b.k
            USING ERRCODE = 'check_violation', CONSTRAINT = 'vote_kind_matches_k';
    END IF;
    IF NEW.best_position IS NOT NULL AND NEW.best_position >= b.k THEN
        RAISE EXCEPTION 'best position % is not below battle k %', NEW.best_position, b.k
            USING ERRCODE = 'check_violation', CONSTRAINT = 'vote_best_below_k';
    END IF;
    IF NEW.voter_id <> b.voter_id THEN
        RAISE EXCEPTION 'vote by voter % on a battle served to voter %', NEW.voter_id, b.voter_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'vote_by_battle_voter';
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER arena_vote_matches_battle BEFORE INSERT OR UPDATE ON arena_vote
    FOR EACH ROW EXECUTE FUNCTION arena_vote_matches_battle();
"""

DROP = """
DROP TRIGGER IF EXISTS arena_vote_matches_battle ON arena_vote;
DROP FUNCTION IF EXISTS arena_vote_matches_battle();
DROP TRIGGER IF EXISTS arena_slot_position_below_k ON arena_battleslot;
DROP FUNCTION IF EXISTS arena_slot_position_below_k();
"""


def _run_on_postgres(sql: str):  # type: ignore[no-untyped-def]
    def run(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)  # None: the % in RAISE are not placeholders

    return run


class Migration(migrations.Migration):
    dependencies = [("arena", "0001_initial")]
    operations = [migrations.RunPython(_run_on_postgres(CREATE), _run_on_postgres(DROP))]
