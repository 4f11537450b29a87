"""A voted battle is a record: the fields added for live battles are frozen with the rest (Postgres).

Replaces the function of migration 0002's ``arena_voted_battles_frozen`` trigger so that, once a battle
has its vote, its turns, prompt source, generation state, identity-leak note, void reason and reveal
time cannot change either (the vote's identity-leak flag must keep agreeing with the battle).
"""
from __future__ import annotations

from django.db import migrations

FROZEN = """
CREATE OR REPLACE FUNCTION arena_voted_battles_frozen() RETURNS trigger AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM arena_new_battles n JOIN arena_old_battles o ON o.id = n.id
               JOIN arena_vote v ON v.battle_id = n.id
               WHERE n.k <> o.k OR n.voter_id <> o.voter_id OR n.anonymous <> o.anonymous
                  OR n.status <> 'voted' OR n.prompt_id IS DISTINCT FROM o.prompt_id
                  OR n.turns <> o.turns OR n.prompt_source <> o.prompt_source OR n.generation <> o.generation
                  OR n.identity_leak <> o.identity_leak OR n.void_reason <> o.void_reason
                  OR n.revealed_at IS DISTINCT FROM o.revealed_at) THEN
        RAISE EXCEPTION 'a voted battle cannot change' USING ERRCODE = 'check_violation',
            CONSTRAINT = 'voted_battle_frozen';
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;
"""

PREVIOUS = """
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
"""


def _run_on_postgres(sql: str):  # type: ignore[no-untyped-def]
    def run(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("arena", "0003_live_battles")]
    operations = [migrations.RunPython(_run_on_postgres(FROZEN), _run_on_postgres(PREVIOUS))]
