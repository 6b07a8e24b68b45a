from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0011_trace_context"),
    ]

    operations = [
        migrations.CreateModel(
            name="RateWindow",
            fields=[
                ("name", models.CharField(max_length=200, primary_key=True, serialize=False)),
                ("starts", models.JSONField(default=list)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
        ),
    ]
