"""The run's worker indexed only where it is set (runs/models.py says why).

An insert, and every update of a run with no worker (PostgreSQL writes an entry into each
index for a row version an update cannot keep on its page), no longer adds an entry for a
NULL no query looks up. Looking up a worker's runs, and clearing them when a worker row is
deleted, uses the partial index as it used the whole one.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("pipelines", "0007_archive"),
        ("runs", "0019_pipeline_claimable_index"),
    ]

    operations = [
        migrations.AlterField(
            model_name="run",
            name="worker",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="runs",
                to="runs.worker",
            ),
        ),
        migrations.AddIndex(
            model_name="run",
            index=models.Index(
                condition=models.Q(("worker__isnull", False)),
                fields=["worker"],
                name="run_worker_idx",
            ),
        ),
    ]
