"""Rules that span two tables, enforced by Postgres triggers.

A CHECK constraint sees one row, so "a slot's position is below its battle's K", "only a named battle
shows a model twice", "a pairwise vote only on a K = 2 battle, cast by the voter it was served to", and
"a vote's copies of its battle's contenders and anonymity equal the battle's" need triggers; so does "a voted battle and its slots never change". They are statement-level triggers over the transition table of inserted rows: one join
per statement instead of one lookup per row, so a bulk COPY of a million battles stays fast.
On SQLite (the demo) the services are the only guard; CI runs on Postgres, where these are the last
line behind them.
"""
from __future__ import annotations

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION arena_slots_fit_battle() RETURNS trigger AS $$
DECLARE bad record;
BEGIN
    SELECT n.position, n.sample, b.k, b.anonymous INTO bad
    FROM arena_new_slots n JOIN arena_battle b ON b.id = n.battle_id
    WHERE n.position >= b.k OR (n.sample > 0 AND b.anonymous)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'slot (position %, sample %) does not fit a battle of k % (anonymous: %)',
            bad.position, bad.sample, bad.k, bad.anonymous
            USING ERRCODE = 'check_violation', CONSTRAINT = 'slot_fits_battle';
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER arena_slots_fit_battle_insert AFTER INSERT ON arena_battleslot
    REFERENCING NEW TABLE AS arena_new_slots FOR EACH STATEMENT EXECUTE FUNCTION arena_slots_fit_battle();
CREATE TRIGGER arena_slots_fit_battle_update AFTER UPDATE ON arena_battleslot
    REFERENCING NEW TABLE AS arena_new_slots FOR EACH STATEMENT EXECUTE FUNCTION arena_slots_fit_battle();

CREATE OR REPLACE FUNCTION arena_votes_fit_battle() RETURNS trigger AS $$
DECLARE bad record;
BEGIN
    SELECT n.kind, n.best_position, n.voter_id, b.k, b.voter_id AS battle_voter INTO bad
    FROM arena_new_votes n JOIN arena_battle b ON b.id = n.battle_id
    LEFT JOIN arena_battleslot s0 ON s0.battle_id = n.battle_id AND s0.position = 0
    LEFT JOIN arena_battleslot s1 ON s1.battle_id = n.battle_id AND s1.position = 1
    WHERE (n.kind = 'pairwise') <> (b.k = 2) OR n.best_position >= b.k OR n.voter_id <> b.voter_id
       OR n.anonymous <> b.anonymous OR b.status <> 'voted'
       OR (n.kind = 'pairwise' AND (n.contender_a_id IS DISTINCT FROM s0.contender_id
                                    OR n.contender_b_id IS DISTINCT FROM s1.contender_id))
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'vote (kind %, best %, voter %) does not fit its battle (k %, voter %, slots, anonymity, status)',
            bad.kind, bad.best_position, bad.voter_id, bad.k, bad.battle_voter
            USING ERRCODE = 'check_violation', CONSTRAINT = 'vote_fits_battle';
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER arena_votes_fit_battle_insert AFTER INSERT ON arena_vote
    REFERENCING NEW TABLE AS arena_new_votes FOR EACH STATEMENT EXECUTE FUNCTION arena_votes_fit_battle();
CREATE TRIGGER arena_votes_fit_battle_update AFTER UPDATE ON arena_vote
    REFERENCING NEW TABLE AS arena_new_votes FOR EACH STATEMENT EXECUTE FUNCTION arena_votes_fit_battle();

-- Once voted, a battle and its slots are a record: what the voter saw must not change under the vote
-- (the vote's copies of the pair and of the anonymity would silently disagree).
CREATE OR REPLACE FUNCTION arena_voted_battles_frozen() RETURNS trigger AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM arena_new_battles n JOIN arena_old_battles o ON o.id = n.id
               JOIN arena_vote v ON v.battle_id = n.id
               WHERE n.k <> o.k OR n.voter_id <> o.voter_id OR n.anonymous <> o.anonymous
                  OR n.status <> 'voted' OR n.prompt_id IS DISTINCT FROM o.prompt_id) THEN
        RAISE EXCEPTION 'a voted battle cannot change' USING ERRCODE = 'check_violation',
            CONSTRAINT = 'voted_battle_frozen';
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER arena_voted_battles_frozen AFTER UPDATE ON arena_battle
    REFERENCING OLD TABLE AS arena_old_battles NEW TABLE AS arena_new_battles
    FOR EACH STATEMENT EXECUTE FUNCTION arena_voted_battles_frozen();

CREATE OR REPLACE FUNCTION arena_voted_slots_frozen() RETURNS trigger AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM arena_old_slots o JOIN arena_vote v ON v.battle_id = o.battle_id) THEN
        RAISE EXCEPTION 'the slots of a voted battle cannot change' USING ERRCODE = 'check_violation',
            CONSTRAINT = 'voted_slots_frozen';
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER arena_voted_slots_frozen_update AFTER UPDATE ON arena_battleslot
    REFERENCING OLD TABLE AS arena_old_slots FOR EACH STATEMENT EXECUTE FUNCTION arena_voted_slots_frozen();
CREATE TRIGGER arena_voted_slots_frozen_delete AFTER DELETE ON arena_battleslot
    REFERENCING OLD TABLE AS arena_old_slots FOR EACH STATEMENT EXECUTE FUNCTION arena_voted_slots_frozen();
"""

DROP = """
DROP TRIGGER IF EXISTS arena_voted_battles_frozen ON arena_battle;
DROP FUNCTION IF EXISTS arena_voted_battles_frozen();
DROP TRIGGER IF EXISTS arena_voted_slots_frozen_update ON arena_battleslot;
DROP TRIGGER IF EXISTS arena_voted_slots_frozen_delete ON arena_battleslot;
DROP FUNCTION IF EXISTS arena_voted_slots_frozen();
DROP TRIGGER IF EXISTS arena_votes_fit_battle_insert ON arena_vote;
DROP TRIGGER IF EXISTS arena_votes_fit_battle_update ON arena_vote;
DROP FUNCTION IF EXISTS arena_votes_fit_battle();
DROP TRIGGER IF EXISTS arena_slots_fit_battle_insert ON arena_battleslot;
DROP TRIGGER IF EXISTS arena_slots_fit_battle_update ON arena_battleslot;
DROP FUNCTION IF EXISTS arena_slots_fit_battle();
"""


def _run_on_postgres(sql: str):  # type: ignore[no-untyped-def]
    def run(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)  # None: the % in RAISE are not placeholders

    return run


class Migration(migrations.Migration):
    dependencies = [("arena", "0001_initial")]
    operations = [migrations.RunPython(_run_on_postgres(CREATE), _run_on_postgres(DROP))]
