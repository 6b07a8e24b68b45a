from datetime import UTC, datetime
from typing import Any

import django.db.models.deletion
from django.db import migrations, models

BATCH = 1000


def copy_logs(apps: Any, schema_editor: Any) -> None:
    """Each step's `logs` array becomes its StepLog rows, in the order they were kept."""
    Step = apps.get_model("runs", "Step")
    StepLog = apps.get_model("runs", "StepLog")
    rows: list[Any] = []
    for step in Step.objects.only("id", "run_id", "logs", "finished_at").iterator(BATCH):
        numbered: dict[int, int] = {}
        for record in step.logs or []:
            if not isinstance(record, dict):
                continue
            attempt = record.get("attempt")
            attempt = attempt if isinstance(attempt, int) and attempt > 0 else 1
            sequence = numbered[attempt] = numbered.get(attempt, -1) + 1
            rows.append(
                StepLog(
                    run_id=step.run_id,
                    step_id=step.id,
                    attempt=attempt,
                    sequence=sequence,
                    time=_time(record.get("time"), step.finished_at),
                    level=str(record.get("level", ""))[:16],
                    message=str(record.get("message", "")),
                    fields=record.get("fields") if isinstance(record.get("fields"), dict) else {},
                )
            )
        if len(rows) >= BATCH:
            StepLog.objects.bulk_create(rows)
            rows = []
    StepLog.objects.bulk_create(rows)


def _time(value: Any, fallback: datetime | None) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return fallback or datetime.now(UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def restore_logs(apps: Any, schema_editor: Any) -> None:
    Step = apps.get_model("runs", "Step")
    StepLog = apps.get_model("runs", "StepLog")
    logs: dict[int, list[dict[str, Any]]] = {}
    for line in StepLog.objects.order_by("step_id", "attempt", "sequence").iterator(BATCH):
        logs.setdefault(line.step_id, []).append(
            {
                "time": line.time.isoformat(),
                "level": line.level,
                "message": line.message,
                "fields": line.fields,
                "attempt": line.attempt,
            }
        )
    for step_id, records in logs.items():
        Step.objects.filter(id=step_id).update(logs=records)


class Migration(migrations.Migration):
    """Step logs move from a JSON array on the step, rewritten on every append, to an
    append-only table the worker streams a running step's records into."""

    dependencies = [
        ("runs", "0004_fence"),
    ]

    operations = [
        migrations.CreateModel(
            name="StepLog",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "attempt",
                    models.PositiveIntegerField(help_text="The attempt that wrote it (1-based)."),
                ),
                (
                    "sequence",
                    models.PositiveIntegerField(
                        help_text="Its place within the attempt (0-based)."
                    ),
                ),
                (
                    "time",
                    models.DateTimeField(help_text="When the step logged it (the step's clock)."),
                ),
                ("level", models.CharField(max_length=16)),
                ("message", models.TextField()),
                (
                    "fields",
                    models.JSONField(
                        blank=True, default=dict, help_text="The record's `extra` fields."
                    ),
                ),
                (
                    "run",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="runs.run",
                    ),
                ),
                (
                    "step",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="log_records",
                        to="runs.step",
                    ),
                ),
            ],
            options={
                "ordering": ["step", "attempt", "sequence"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("run", "step", "attempt", "sequence"),
                        name="steplog_unique_sequence",
                    )
                ],
            },
        ),
        migrations.RunPython(copy_logs, restore_logs, elidable=True),
        migrations.RemoveField(model_name="step", name="logs"),
    ]
