"""Webhook events recorded before the audit trail stopped holding an endpoint's last error
had it in their changes (`webhook.disabled`'s "reason", `webhook.enabled`'s
"was_disabled_because": "Disabled after 10 failed deliveries in a row; the last: <error>"),
readable by every role, while the error can name the endpoint's host or address, which
only admins may see. Each such value keeps its first part, as runs/webhooks/sending.py
now records it."""

from __future__ import annotations

from typing import Any

from django.db import migrations

#: Each action with the key its reason is under.
KEYS = {"webhook.disabled": "reason", "webhook.enabled": "was_disabled_because"}

#: Where a disabled_reason goes on to the last error (runs/webhooks/sending.py LAST_ERROR,
#: copied: a migration keeps the text it was written for).
LAST_ERROR = "; the last: "


def forget_errors(apps: Any, schema_editor: Any) -> None:
    """Every such event's reason without its last error; nothing else is touched."""
    events = apps.get_model("orbit", "AuditEvent")
    for event in events.objects.filter(action__in=KEYS).only("id", "action", "changes").iterator():
        changes, key = event.changes, KEYS[event.action]
        if isinstance(changes, dict) and LAST_ERROR in str(changes.get(key, "")):
            changes[key] = str(changes[key]).split(LAST_ERROR, 1)[0]
            events.objects.filter(id=event.id).update(changes=changes)


class Migration(migrations.Migration):
    dependencies = [
        ("orbit", "0009_webhook_audit_without_urls"),
    ]

    operations = [migrations.RunPython(forget_errors, migrations.RunPython.noop, elidable=True)]
