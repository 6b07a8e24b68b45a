"""The function `orbit_insert_runs` on PostgreSQL: the insert of runs, their steps and
audit events, whose plans PostgreSQL keeps per session (runs/store/sql/functions.sql says
why). runs/store/sql/runs.sql `insert_runs` calls it.

The function's text is read from runs/store/sql/functions.sql with the tables named as
this migration's models name them. SQLite has no functions: there the operation does
nothing (the portable store inserts with the ORM).
"""

from __future__ import annotations

from django.db import migrations

from runs.store.queries import functions_migration

#: The function's text this migration was written for (functions.sql `create_insert_runs`,
#: comment lines left out): tests/runs/store/test_functions.py holds the file to the
#: newest migration's, so the text is not changed without a migration that applies it.
SOURCE_SHA256 = {
    "create_insert_runs": "d8c6d4715cd9f6f75da6d70b05f2115b71eb121369a995c3101b23b3bdf16dda"
}

#: The tables the function's text names, as {key}: (app label, model).
TABLES = {
    "run": ("runs", "Run"),
    "step": ("runs", "Step"),
    "pipeline": ("pipelines", "Pipeline"),
    "audit": ("orbit", "AuditEvent"),
}


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0015_webhooks"),
        ("pipelines", "0007_archive"),
        ("orbit", "0002_auditevent"),
    ]

    operations = [functions_migration(TABLES, ("insert_runs",))]
