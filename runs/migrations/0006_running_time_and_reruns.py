from typing import Any

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce


def add_up_running_time(apps: Any, schema_editor: Any) -> None:
    """Each run's running time is the sum of its attempts' recorded durations."""
    Run = apps.get_model("runs", "Run")
    StepAttempt = apps.get_model("runs", "StepAttempt")
    total = (
        StepAttempt.objects.filter(run_id=OuterRef("pk"), duration__isnull=False)
        .order_by()
        .values("run_id")
        .annotate(total=Sum("duration"))
        .values("total")
    )
    Run.objects.filter(started_at__isnull=False).update(
        running_time=Coalesce(Subquery(total), Value(0.0))
    )


class Migration(migrations.Migration):
    """A run's running time (the sum of its attempts), kept beside its elapsed time so
    charts and percentiles leave out the idle time before retries; and reruns linked to
    the run they run again."""

    dependencies = [
        ("runs", "0005_step_logs"),
    ]

    operations = [
        migrations.AddField(
            model_name="run",
            name="running_time",
            field=models.FloatField(
                default=0.0,
                help_text="Seconds spent running: the sum of the durations its attempts "
                "recorded (what charts and percentiles use; idle time before retries is "
                "not in it).",
            ),
        ),
        migrations.RunPython(add_up_running_time, migrations.RunPython.noop, elidable=True),
        migrations.AddField(
            model_name="run",
            name="rerun_of",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                help_text="The run this one runs again (with the same or edited metadata).",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="reruns",
                to="runs.run",
            ),
        ),
        migrations.AddIndex(
            model_name="run",
            index=models.Index(
                condition=models.Q(("rerun_of__isnull", False)),
                fields=["rerun_of"],
                name="run_rerun_of_idx",
            ),
        ),
    ]
