"""The functions `orbit_claim` (again) and `orbit_due_under_limits` on PostgreSQL
(runs/store/sql/functions.sql says how each reads, and why a function).

Before, the plain claim read the queue's pending runs in claim order and skipped those it
may not take, so a backlog held by a flow limit (or a paused pipeline's) cost every claim
a skip per held run; it now reads each pipeline it may take through that pipeline's
claim-order index. The due runs under limits were a statement sent as text and planned
on every claim under limits, in more time than it took to run. In both, the test of the
claimant's step names could be planned as a hash of every unfinished step in the table.
"""

from __future__ import annotations

from django.db import migrations

from runs.store.queries import functions_migration

#: The functions' text this migration was written for (comment lines left out):
#: tests/runs/store/test_functions.py holds functions.sql to the newest migration's.
SOURCE_SHA256 = {
    "create_claim": "911a97f61e590b0e735054304632840da56e73b4382d6521c8fc14d6c178fc72",
    "create_due_under_limits": "92da82c03d83e389ad8bfc6966ba6757bbceda1f257db45a1942172d837ea171",
}

#: The tables the functions' text names, as {key}: (app label, model).
TABLES = {
    "run": ("runs", "Run"),
    "step": ("runs", "Step"),
    "pipeline": ("pipelines", "Pipeline"),
    "queuepause": ("runs", "QueuePause"),
}


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0020_worker_index_where_set"),
    ]

    operations = [
        # Backwards: 0017's own reverse drops orbit_claim; until then this text serves the
        # schema of 0017-0020 as well (it reads only what they have).
        functions_migration(TABLES, ("claim",), reversible=False),
        functions_migration(TABLES, ("due_under_limits",)),
    ]
