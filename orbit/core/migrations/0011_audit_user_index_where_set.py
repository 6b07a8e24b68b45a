"""The audit trail's index on `user` only where an event has one (audit_user_idx).

Most events are a worker's, the CLI's, a schedule's or code's, with no user, and every
run queued from code writes one: each paid for an index entry that no query reads (a
lookup by user, as deleting a user makes, says `user_id = ...`, which implies NOT NULL,
so the partial index serves it as the whole one did)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("orbit", "0010_webhook_audit_without_errors"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditevent",
            name="user",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                help_text="The user who acted; empty for the CLI, schedules, workers and code.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(
                condition=models.Q(("user__isnull", False)), fields=["user"], name="audit_user_idx"
            ),
        ),
    ]
