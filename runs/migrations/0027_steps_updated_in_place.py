"""A step's two updates as it runs rewrite it in place.

The claim starts a run's step (status, started_at) and the commit finishes it (status,
result, counts, times). `step_status_idx` (status, id) was the one index of the step
table on a column they change, so PostgreSQL wrote every version of every step into all
four of its indexes; without it, and with room left on each page for a new version (fill
factor 50, PostgreSQL only), both updates are HOT: the new version on the same page, no
index touched, the old one pruned in place without waiting for VACUUM
(docs/PERFORMANCE.md, "Steps updated in place"). The step list by status, which the
index served, reads steps newest first a bounded stretch at a time (orbit/api/runs.py
`list_steps`).

The fill factor applies to pages written from now on; a table's existing pages fill as
rows are pruned and pruning makes room. Backwards: the fill factor is reset and the
index built again (a scan of the step table).
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

TABLE = "runs_step"
#: Half of each new page left for the versions its steps' updates write.
FILL_FACTOR = 50


def _on_postgresql(schema_editor: Any) -> bool:
    return bool(schema_editor.connection.vendor == "postgresql")


def leave_room(apps: Any, schema_editor: Any) -> None:
    if _on_postgresql(schema_editor):
        schema_editor.execute(f"ALTER TABLE {TABLE} SET (fillfactor = {FILL_FACTOR})")


def fill_pages(apps: Any, schema_editor: Any) -> None:
    if _on_postgresql(schema_editor):
        schema_editor.execute(f"ALTER TABLE {TABLE} RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0026_runs_and_steps_checked_once"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="step", name="step_status_idx"),
        migrations.RunPython(leave_room, fill_pages, elidable=False),
    ]
