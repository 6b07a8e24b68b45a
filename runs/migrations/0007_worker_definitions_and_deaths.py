from django.db import migrations, models


class Migration(migrations.Migration):
    """Workers record the definitions they can run (for runs waiting for a worker that
    defines them), and when they were found dead, holding what, or forgotten."""

    dependencies = [
        ("runs", "0006_running_time_and_reruns"),
    ]

    operations = [
        migrations.AddField(
            model_name="worker",
            name="definitions",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="The pipeline definitions it loaded, each with its step names: the runs it can claim (runs of other pipelines wait for a worker that defines them).",
            ),
        ),
        migrations.AddField(
            model_name="worker",
            name="died_at",
            field=models.DateTimeField(
                blank=True,
                help_text="When a recovery sweep found it silent for longer than a lease without having stopped; it died soon after its last heartbeat.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="worker",
            name="forgotten_at",
            field=models.DateTimeField(
                blank=True,
                help_text="When an operator removed this dead worker from the lists; its attempts still name it.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="worker",
            name="held_at_death",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="The runs it held when it was found dead (run, pipeline, step); recovery put them back in the queue.",
            ),
        ),
    ]
