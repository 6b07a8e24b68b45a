"""The functions `orbit_claim` and `orbit_commit` again, on PostgreSQL
(runs/store/sql/functions.sql).

Each updated the runs it had picked (the claim's candidates, the commit's outcomes) by a
join on those alone. The planner priced a primary-key lookup per run above a scan of a
run table under some 25,000 rows (or one not yet analysed, with the commit's input
estimated at json_to_recordset's fixed 100 rows), so in every new deployment, and any
that retention keeps small, each claim scanned the whole run table and the whole step
table, and each commit the whole run table: 2 ms a commit at 12,000 runs where the
lookups take 0.1, and the PostgreSQL drain 8-17% slower than before the store. The ids
now also come as an array, an index condition whatever the tables' size.
"""

from __future__ import annotations

from django.db import migrations

from runs.store.queries import functions_migration

#: The functions' text this migration was written for (comment lines left out):
#: tests/runs/store/test_functions.py holds functions.sql to the newest migration's.
SOURCE_SHA256 = {
    "create_claim": "b599d0fec79277bd8a4e9addd078b0e7c0083806ef88bb68b16679795feb6e9d",
    "create_commit": "5c03b05ecf1b08158dbd814363a0b4a036a27a023bd81069bdb80056c9c0de39",
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
        ("runs", "0021_claim_by_pipeline"),
    ]

    operations = [
        # Backwards: 0017's own reverse drops both; until then this text serves the
        # schema of 0017-0021 as well (it reads and writes only what they have).
        functions_migration(TABLES, ("claim", "commit"), reversible=False),
    ]
