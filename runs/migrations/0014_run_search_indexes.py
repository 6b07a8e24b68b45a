"""A GIN index on runs' metadata (jsonb_path_ops) for `metadata @> '{"key": "value"}'`,
the metadata search of runs/search.py, on PostgreSQL only.

SQLite has no GIN index: there the operation does nothing (its metadata search reads the
rows the other filters leave). Built CONCURRENTLY, outside a transaction, so a deploy
onto a large table does not block the workers' writes while it builds.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

INDEX = "run_metadata_gin"
TABLE = "runs_run"


def _on_postgresql(schema_editor: Any) -> bool:
    return bool(schema_editor.connection.vendor == "postgresql")


def create_index(apps: Any, schema_editor: Any) -> None:
    if _on_postgresql(schema_editor):
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} "
            f"ON {TABLE} USING gin (metadata jsonb_path_ops)"
        )


def drop_index(apps: Any, schema_editor: Any) -> None:
    if _on_postgresql(schema_editor):
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("runs", "0013_queue_pause"),
    ]

    operations = [
        migrations.RunPython(create_index, drop_index, elidable=False),
    ]
