"""`orbit_insert_runs` created again: a batch's steps and audit events are written with
their columns named, each value from a row of the models' defaults built once (or, for
an event's column a run sets itself, from the run's own), where each row was laid out
from jsonb by jsonb_populate_record (runs/store/sql/functions.sql `create_insert_runs`
says why). The parameters and the rows it answers are unchanged.

Backwards, nothing is done: the code of 0024 calls the function with the same parameters
and reads the same rows, so this text serves it as well as 0024's.
SQLite has no functions: there the operation does nothing.
"""

from __future__ import annotations

from django.db import migrations

from runs.store.queries import functions_migration

#: The function's text this migration was written for (functions.sql, comment lines left
#: out): tests/runs/store/test_functions.py holds the file to it.
SOURCE_SHA256 = {
    "create_insert_runs": "e8bce4e1702295d81d6b5d715138511b372ff2a83129efe02fd62e73fa56ffd1",
}

#: The tables the function's text names, as {key}: (app label, model).
TABLES = {
    "run": ("runs", "Run"),
    "step": ("runs", "Step"),
    "audit": ("orbit", "AuditEvent"),
}


class Migration(migrations.Migration):
    dependencies = [("runs", "0024_insert_run_function")]

    operations = [functions_migration(TABLES, ("insert_runs",), reversible=False)]
