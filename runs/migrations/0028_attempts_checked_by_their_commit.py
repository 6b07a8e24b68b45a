"""An attempt's run and step are no longer checked once per attempt inserted.

The foreign-key constraints from an attempt to its run and to its step are dropped: each
ran a check for every attempt inserted (a query each, at COMMIT), together about a
tenth of a worker's commit: 11 us of 117 a run (docs/PERFORMANCE.md, "An attempt's run
and step, checked by its commit"). What they did is kept, as migration 0026 kept it for a
run's pipeline and a step's run:
- on insert, the commit inserts an attempt only for a run its statement holds fenced
  (there, and locked by the same statement), for one of that run's steps, read under the
  claim; a step is only ever deleted with its run;
- on delete, two triggers that run once per statement refuse to delete a run or a step
  that still has attempts (`orbit_runs_keep_their_attempts` and
  `orbit_steps_keep_their_attempts`, both calling 0026's `orbit_refuse_orphans`),
  whoever deletes.
Django's own rule (CASCADE) is unchanged; an attempt keeps its foreign key to its worker
(SET_NULL, which the database must not refuse). The triggers are in
runs/store/sql/functions.sql; docs/ARCHITECTURE.md, "A run's tree", says it whole.

Backwards, the triggers are dropped and the constraints added again (which fails on a
database holding an attempt without its run or step). SQLite has no trigger functions:
there only the constraints change.
"""

from __future__ import annotations

import django.db.models.deletion
from django.db import migrations, models

from runs.store.queries import functions_migration

#: The text this migration was written for (functions.sql, comment lines left out):
#: tests/runs/store/test_functions.py holds the file to it.
SOURCE_SHA256 = {
    "create_attempts_kept": "a899f99e907dac69b7ebeab14a85934b30d7c57e22fe765b7fd4fab4bd922a65",
}

#: The tables the text names, as {key}: (app label, model).
TABLES = {
    "run": ("runs", "Run"),
    "step": ("runs", "Step"),
    "attempt": ("runs", "StepAttempt"),
}


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0027_steps_updated_in_place"),
    ]

    operations = [
        migrations.AlterField(
            model_name="stepattempt",
            name="run",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="attempts",
                to="runs.run",
            ),
        ),
        migrations.AlterField(
            model_name="stepattempt",
            name="step",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="attempt_records",
                to="runs.step",
            ),
        ),
        functions_migration(TABLES, ("attempts_kept",)),
    ]
