from django.db import migrations


def retally(apps, schema_editor):  # type: ignore[no-untyped-def]
    # Pair tallies now keep the lower contender id first (arena.tallies.pair_in_order), and the all-time tables
    # also sum every language under language "" (arena.tallies._all_time_upsert_sql); the rows 0007 wrote are
    # in the old form, so they are recomputed. Uses the current code, as 0007 does.
    from arena.tallies import tallies_rebuild

    tallies_rebuild()


class Migration(migrations.Migration):

    dependencies = [("arena", "0007_vote_tallies")]

    operations = [migrations.RunPython(retally, migrations.RunPython.noop)]
