"""The function `orbit_insert_runs` again, taking what a batch's runs share once and from
each run only what is its own (runs/store/sql/functions.sql `create_insert_runs` says
why): it has other parameters and another result, so the old one is dropped first.

SQLite has no functions: there the operation does nothing.
"""

from __future__ import annotations

import importlib

from django.db import migrations

from runs.store.queries import functions_migration

#: The tables, as 0016 names them.
earlier = importlib.import_module("runs.migrations.0016_insert_runs_function")

#: The function's text this migration was written for (functions.sql `create_insert_runs`,
#: comment lines left out): tests/runs/store/test_functions.py holds the file to it.
SOURCE_SHA256 = {
    "create_insert_runs": "06727eae0c6c8fe2f015335959a0255daafb1e1f7bcd37eac05891194705572c"
}

#: The function as migration 0016 created it.
DROP_0016 = (
    "DROP FUNCTION IF EXISTS "
    "orbit_insert_runs(jsonb, jsonb, jsonb, jsonb, jsonb, regclass, regclass, text)"
)


class Migration(migrations.Migration):
    dependencies = [("runs", "0017_claim_commit_functions")]

    operations = [
        # Backwards: 0016's own reverse drops the function in every form it had.
        functions_migration(
            earlier.TABLES, ("insert_runs",), drop_first=(DROP_0016,), reversible=False
        ),
    ]
