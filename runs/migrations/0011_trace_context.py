from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0009_enqueue_unique_key"),
    ]

    operations = [
        migrations.AddField(
            model_name="run",
            name="trace_context",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="The enqueuing code's trace context (W3C traceparent, tracestate), the parent of the run's spans; empty while tracing is off (docs/TRACING.md).",
            ),
        ),
    ]
