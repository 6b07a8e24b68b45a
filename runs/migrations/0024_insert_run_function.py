"""The function `orbit_insert_run` (runs/store/sql/functions.sql `create_insert_run` says
why): one run, its steps, its audit event and its NOTIFY from typed values, the path of a
single `enqueue`, where `orbit_insert_runs` spent a third of the call laying one row out
from jsonb. The two rules both insert functions write under, the pipeline row as the
caller read it and the run holding a taken key, become functions of their own
(`orbit_pipeline_as_read`, `orbit_run_holding`), and `orbit_insert_runs` is created again
to call them.

Backwards, nothing is dropped: the schema of 0023 is served as well by these functions
(the code of then never calls `orbit_insert_run`), as by 0018-0023's own re-creations.
SQLite has no functions: there the operation does nothing.
"""

from __future__ import annotations

from django.db import migrations

from runs.store.queries import functions_migration

#: The functions' text this migration was written for (functions.sql, comment lines left
#: out): tests/runs/store/test_functions.py holds the file to it.
SOURCE_SHA256 = {
    "create_pipeline_as_read": "83891f23bfb553fa9c03a2d3dd5ce62c6ba953dd59d5b7d9aa3dfe2304ede329",
    "create_run_holding": "50666c3f063f778416b84b3dc7a4d5d57d6dacea43ac05c5266d81a5104ccfb8",
    "create_insert_runs": "e72441897eacf597145c697d6d5ace6a1cef92e8379f1736fb8a5ed4da6bd2ba",
    "create_insert_run": "bf9449d6f4c999cc1f15550eb7665bea77adf452fae29a7a1df8308c1f6f11c3",
}

#: The tables the functions' text names, as {key}: (app label, model).
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

    operations = [
        functions_migration(
            TABLES,
            ("pipeline_as_read", "run_holding", "insert_runs", "insert_run"),
            reversible=False,
        )
    ]
