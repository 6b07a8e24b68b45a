"""A run's pipeline and a step's run are checked once a batch, not once a row.

The foreign-key constraints from a run to its pipeline and from a step to its run are
dropped: each ran a check for every row inserted (a query each, at COMMIT), a fifth of an
enqueue's time, for rows the insert functions write together (docs/PERFORMANCE.md,
"Integrity checked once a batch"). What they did is kept:
- on insert, `orbit_insert_runs` and `orbit_insert_run` (created again here) hold every
  run's pipeline until the transaction ends, locked as the constraint's check locked it,
  or refuse a pipeline that does not exist (`orbit_pipelines_held`), once a batch; a
  step is only ever inserted with its run, by the same statement;
- on delete, two triggers that run once per statement refuse to delete a pipeline that
  has runs or a run that still has steps (`orbit_pipelines_keep_their_runs` and
  `orbit_runs_keep_their_steps`, both calling `orbit_refuse_orphans`), whoever deletes.
Django's own rules (PROTECT, CASCADE) are unchanged. `orbit_insert_runs` also names a
batch's runs in their audit events from a prefix sent once (`_label_prefix`), where each
run sent its whole name. All of it is in
runs/store/sql/functions.sql; docs/ARCHITECTURE.md, "A run's tree", says it whole.

Backwards, the triggers are dropped and the constraints added again (which fails on a
database holding a run without its pipeline or a step without its run); the insert
functions keep this text, which serves 0025's code as well (the same parameters and
rows). SQLite has no functions: there only the constraints change, and the portable store
checks the pipelines itself (runs/store/portable.py).
"""

from __future__ import annotations

import django.db.models.deletion
from django.db import migrations, models

from runs.store.queries import functions_migration

#: The text this migration was written for (functions.sql, comment lines left out):
#: tests/runs/store/test_functions.py holds the file to it.
SOURCE_SHA256 = {
    "create_pipelines_held": "00d805b1ec0e24426b81c72729d18cf8153306cfdde24aa600535ff63f9460c1",
    "create_insert_runs": "7f30a5d8cb26d38cd40d1d2d301dc2f18a73bce21669770769fc787014835480",
    "create_insert_run": "3d6ada065467959e533f7ee59b30c8d98b0069c153c72805ee741b41266ed4dc",
    "create_refuse_orphans": "218114fb74be6589f9f602ef6daf66bdcbbafda830c435270e15d7225c21d092",
}

#: The tables the text names, as {key}: (app label, model).
TABLES = {
    "run": ("runs", "Run"),
    "step": ("runs", "Step"),
    "audit": ("orbit", "AuditEvent"),
    "pipeline": ("pipelines", "Pipeline"),
}


class Migration(migrations.Migration):
    dependencies = [
        ("orbit", "0011_audit_user_index_where_set"),
        ("pipelines", "0007_archive"),
        ("runs", "0025_insert_runs_steps_and_events_by_name"),
    ]

    operations = [
        migrations.AlterField(
            model_name="run",
            name="pipeline",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="runs",
                to="pipelines.pipeline",
            ),
        ),
        migrations.AlterField(
            model_name="step",
            name="run",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="steps",
                to="runs.run",
            ),
        ),
        functions_migration(
            TABLES, ("pipelines_held", "insert_runs", "insert_run"), reversible=False
        ),
        functions_migration(TABLES, ("refuse_orphans",)),
    ]
