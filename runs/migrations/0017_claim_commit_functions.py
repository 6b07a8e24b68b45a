"""The functions `orbit_claim` and `orbit_commit` on PostgreSQL: the worker's two
statements per run, whose plans PostgreSQL keeps per session (runs/store/sql/functions.sql
says why). runs/store/sql/runs.sql `claim` and `commit` call them.

The functions' text is read from runs/store/sql/functions.sql with the tables named as
this migration's models name them. SQLite has no functions: there the operation does
nothing (the portable store claims and commits with the ORM).
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

from runs.store.queries import SQL_DIR, parse

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
FUNCTIONS = ("claim", "commit")


def _statement(apps: Any, schema_editor: Any, name: str) -> str:
    names = {
        key: schema_editor.quote_name(apps.get_model(*model)._meta.db_table)
        for key, model in TABLES.items()
    }
    return parse((SQL_DIR / "functions.sql").read_text())[name].format(**names)


def create_functions(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for name in FUNCTIONS:
            schema_editor.execute(_statement(apps, schema_editor, f"create_{name}"), params=None)


def drop_functions(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for name in FUNCTIONS:
            schema_editor.execute(_statement(apps, schema_editor, f"drop_{name}"), params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0016_insert_runs_function"),
    ]

    operations = [
        migrations.RunPython(create_functions, drop_functions, elidable=False),
    ]
