from django.db import migrations, models


class Migration(migrations.Migration):
    """Audit actions for a run run again and a dead worker forgotten."""

    dependencies = [
        ("orbit", "0004_apitoken_expires_at"),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditevent",
            name="action",
            field=models.CharField(
                choices=[
                    ("run.created", "Run created"),
                    ("run.retried", "Run retried"),
                    ("run.cancelled", "Run cancelled"),
                    ("run.resumed", "Run resumed"),
                    ("run.rerun", "Rerun created"),
                    ("pipeline.created", "Pipeline created"),
                    ("pipeline.changed", "Pipeline changed"),
                    ("pipeline.enabled", "Pipeline enabled"),
                    ("pipeline.disabled", "Pipeline disabled"),
                    ("pipeline.deleted", "Pipeline deleted"),
                    ("token.created", "API token created"),
                    ("token.revoked", "API token revoked"),
                    ("worker.forgotten", "Dead worker forgotten"),
                ],
                max_length=32,
            ),
        ),
    ]
