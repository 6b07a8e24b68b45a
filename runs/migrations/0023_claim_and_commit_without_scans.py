"""The functions `orbit_claim` and `orbit_commit` again, on PostgreSQL
(runs/store/sql/functions.sql), now with `SET enable_seqscan = off` and `SET jit = off`.

A LIMIT over a CTE is estimated at one row, so while the run table looked small to the
planner (a new deployment before autovacuum's first ANALYZE, or a table retention keeps
small) the claim updated its runs and started their steps through a nested loop with a
scan of the whole run table, and of the whole step table, inside it: one of each per
run claimed. On a fresh database the 1-process drain was 11-18% slower for it. Every row
both functions touch is found through an index, so scans are off for their statements;
and JIT with them, which the scans' cost penalty would otherwise set off.
"""

from __future__ import annotations

from django.db import migrations

from runs.store.queries import functions_migration

#: The functions' text this migration was written for (comment lines left out):
#: tests/runs/store/test_functions.py holds functions.sql to the newest migration's.
SOURCE_SHA256 = {
    "create_claim": "ba264e1e494fe4ca5d09efc204f9075e7c586b231775b98694946885306b391c",
    "create_commit": "4585e48b46407976e679380a33b9657b70b440f889a2db9a5358144c65b5a2f8",
}

#: The tables the functions' text names, as {key}: (app label, model).
TABLES = {
    "run": ("runs", "Run"),
    "step": ("runs", "Step"),
    "attempt": ("runs", "StepAttempt"),
    "pipeline": ("pipelines", "Pipeline"),
    "queuepause": ("runs", "QueuePause"),
}


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0022_claim_and_commit_by_index"),
    ]

    operations = [
        # Backwards: 0017's own reverse drops both; until then this text serves the
        # schema of 0017-0022 as well (it reads and writes only what they have).
        functions_migration(TABLES, ("claim", "commit"), reversible=False),
    ]
