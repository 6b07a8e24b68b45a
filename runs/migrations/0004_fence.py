from django.db import migrations, models


class Migration(migrations.Migration):
    """`Run.attempt` is the run's fence, not an attempt: named for what it is."""

    dependencies = [
        ("runs", "0003_slimmer_indexes_time_ordered_ids"),
    ]

    operations = [
        migrations.RenameField(model_name="run", old_name="attempt", new_name="fence"),
        migrations.AlterField(
            model_name="run",
            name="fence",
            field=models.PositiveIntegerField(
                default=0,
                help_text="Incremented by every claim; every write the claimant makes is "
                "conditional on it, so one that lost the run writes nothing.",
            ),
        ),
        migrations.AlterField(
            model_name="run",
            name="current_step",
            field=models.CharField(
                blank=True,
                help_text="The step running, or to run next when the run is pending "
                "(runs/planner.py).",
                max_length=100,
            ),
        ),
    ]
