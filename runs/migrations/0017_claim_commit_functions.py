"""The functions `orbit_claim` and `orbit_commit` on PostgreSQL: the worker's two
statements per run, whose plans PostgreSQL keeps per session (runs/store/sql/functions.sql
says why). runs/store/sql/runs.sql `claim` and `commit` call them.

The functions' text is read from runs/store/sql/functions.sql with the tables named as
this migration's models name them. SQLite has no functions: there the operation does
nothing (the portable store claims and commits with the ORM).
"""

from __future__ import annotations

from django.db import migrations

from runs.store.queries import functions_migration

#: The functions' text this migration was written for (comment lines left out):
#: tests/runs/store/test_functions.py holds functions.sql to the newest migration's.
SOURCE_SHA256 = {
    "create_claim": "f2820dd481add94008c91010c4bead1fb3193d0d30172fb737f66f5cd065988c",
    "create_commit": "c00adb8678103b409dfef4e29b88517e1eb5cbc2d2e6bb8d6b9758c3b7a63b52",
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
        ("runs", "0016_insert_runs_function"),
    ]

    operations = [functions_migration(TABLES, ("claim", "commit"))]
