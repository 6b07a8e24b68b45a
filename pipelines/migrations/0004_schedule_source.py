from typing import Any

from django.db import migrations, models


def mark_operators_schedules(apps: Any, schema_editor: Any) -> None:
    """Rows whose schedule differs from their definition's in code may hold an operator's
    change: they keep it (source "operator"); the rest follow the code from now on."""
    from pipelines.definition import registry

    Pipeline = apps.get_model("pipelines", "Pipeline")
    for row in Pipeline.objects.only("id", "definition", "schedule"):
        code = registry.find(row.definition)
        if code is None or code.schedule != row.schedule:
            Pipeline.objects.filter(id=row.id).update(schedule_source="operator")


class Migration(migrations.Migration):
    """Where a pipeline's schedule comes from: its code, until an operator changes it."""

    dependencies = [
        ("pipelines", "0003_operate_pipeline_permission"),
    ]

    operations = [
        migrations.AddField(
            model_name="pipeline",
            name="schedule_source",
            field=models.CharField(
                choices=[("code", "Code"), ("operator", "Operator")],
                default="code",
                help_text="Code: the schedule follows the definition's in code. Operator: it "
                "was changed here, and changes in code leave it as it is.",
                max_length=16,
            ),
        ),
        migrations.RunPython(mark_operators_schedules, migrations.RunPython.noop, elidable=True),
    ]
