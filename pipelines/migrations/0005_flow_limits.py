from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("pipelines", "0004_schedule_source"),
    ]

    operations = [
        migrations.AddField(
            model_name="pipeline",
            name="max_concurrency",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="The most runs of this pipeline running at once, over every worker (empty: no limit). docs/FLOW-CONTROL.md",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="pipeline",
            name="max_concurrency_source",
            field=models.CharField(
                choices=[("code", "Code"), ("operator", "Operator")],
                default="code",
                help_text="Code: max_concurrency follows the definition's in code. Operator: it was changed here, and changes in code leave it as it is.",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="pipeline",
            name="rate_limit",
            field=models.CharField(
                blank=True,
                editable=False,
                help_text="The definition's rate limit: a name in ORBIT_RATE_LIMITS or a rate such as 20/minute (empty: none). Follows the code.",
                max_length=100,
            ),
        ),
    ]
