"""Webhook events recorded before the audit trail stopped holding endpoint URLs had them
in their changes (`{"url": [old, new]}`), readable by every role, while only admins may
see an endpoint; many receivers carry their credential in the URL. Each such value
becomes `"changed"`, as runs/webhook_lifecycle.py now records it."""

from __future__ import annotations

from typing import Any

from django.db import migrations

ACTIONS = ("webhook.created", "webhook.changed")


def forget_urls(apps: Any, schema_editor: Any) -> None:
    """Every webhook event's recorded URL, as `"changed"`; nothing else is touched."""
    events = apps.get_model("orbit", "AuditEvent")
    for event in events.objects.filter(action__in=ACTIONS).only("id", "changes").iterator():
        changes = event.changes
        if isinstance(changes, dict) and "url" in changes and changes["url"] != "changed":
            changes["url"] = "changed"
            events.objects.filter(id=event.id).update(changes=changes)


class Migration(migrations.Migration):
    dependencies = [
        ("orbit", "0008_audit_archive_actions"),
    ]

    operations = [migrations.RunPython(forget_urls, migrations.RunPython.noop, elidable=True)]
