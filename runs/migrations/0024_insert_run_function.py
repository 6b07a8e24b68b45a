"""The function `orbit_insert_run` (runs/store/sql/functions.sql `create_insert_run` says
why): one run, its steps, its audit event and its NOTIFY from typed values, the path of a
single `enqueue`, where `orbit_insert_runs` spent a third of the call laying one row out
from jsonb. Backwards, it is dropped; the batch function serves a run alone as before.

SQLite has no functions: there the operation does nothing.
"""

from __future__ import annotations

from django.db import migrations

from runs.store.queries import functions_migration

#: The function's text this migration was written for (functions.sql `create_insert_run`,
#: comment lines left out): tests/runs/store/test_functions.py holds the file to it.
SOURCE_SHA256 = {
    "create_insert_run": "d355b2a9b9e9fcc1006898cf28268dad3ce61b183c08f77dcf0acbf1282bc009"
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
        ("runs", "0023_claim_and_commit_without_scans"),
        ("orbit", "0009_webhook_audit_without_urls"),
    ]

    operations = [functions_migration(TABLES, ("insert_run",))]
