"""An index of each pipeline's claimable runs in claim order (runs/models.py says why),
and no index on the run's pipeline alone, which the indexes leading with it serve.

Without the first, a claim under a pipeline's flow limit read every run the pipeline
ever had to find the few its room admits: on a busy, long-lived pipeline, a scan per
claim. Without the second, an insert maintains as many indexes as before.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("pipelines", "0007_archive"),
        ("runs", "0018_insert_runs_shared_values"),
    ]

    operations = [
        migrations.AlterField(
            model_name="run",
            name="pipeline",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="runs",
                to="pipelines.pipeline",
            ),
        ),
        migrations.AddIndex(
            model_name="run",
            index=models.Index(
                models.F("pipeline"),
                models.OrderBy(models.F("priority"), descending=True),
                models.F("available_at"),
                condition=models.Q(("status", "pending")),
                name="run_pipeline_claimable_idx",
            ),
        ),
    ]
