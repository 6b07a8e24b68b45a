"""The admin of webhook endpoints and their delivery log (docs/WEBHOOKS.md).

Only those who may configure webhooks (the admin role: runs.*_webhook) see either: an
endpoint holds a secret and makes the workers reach an address. The secret is
write-only: a password field that never renders the stored value; left empty on a
change, the secret stays. Saving goes through runs/webhook_lifecycle.py, which checks
the URL against the SSRF guard, the events and the pipelines, and audits the change.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from orbit.console.admin.base import OrbitModelAdmin, ReadOnlyAdmin
from orbit.console.dashboard.present import pretty_json
from orbit.core.audit import Actor
from orbit.core.exceptions import InvalidWebhook
from orbit.core.models import AuditSource
from pipelines.models import Pipeline
from runs.models import Webhook, WebhookDelivery
from runs.signals import ALL as EVENTS
from runs.webhook_lifecycle import (
    clean,
    delivery_redeliver,
    webhook_create,
    webhook_delete,
    webhook_enable,
    webhook_update,
)
from runs.webhooks.backoff import RetrySchedule

EDITABLE = ("name", "url", "events", "pipelines", "secret", "enabled")
NEW_SECRET_HELP = (
    "Give the new endpoint a secret of 16 to 200 characters, for example the output of "
    "python -c 'import secrets; print(secrets.token_urlsafe(32))'."
)


def _actor(request: HttpRequest) -> Actor:
    return Actor.from_request(request, AuditSource.ADMIN)


class WebhookForm(forms.ModelForm):  # type: ignore[type-arg]
    # Checked by the SSRF guard (http(s), public addresses), not by URLField's guesses.
    url = forms.CharField(max_length=2000, help_text=Webhook._meta.get_field("url").help_text)
    events = forms.MultipleChoiceField(
        choices=[(name, name) for name in EVENTS], widget=forms.CheckboxSelectMultiple
    )
    pipelines = forms.MultipleChoiceField(
        choices=(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every pipeline.",
    )
    secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="16 to 200 characters; it signs each delivery (docs/WEBHOOKS.md). Never "
        "shown again: on a change, leave it empty to keep the current one.",
    )

    class Meta:
        model = Webhook
        fields = EDITABLE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = list(Pipeline.objects.order_by("name").values_list("name", flat=True))
        self.fields["pipelines"].choices = [(n, n) for n in names]  # type: ignore[attr-defined]
        self.initial["secret"] = ""

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        values = {f: data[f] for f in EDITABLE if f in data and not self.has_error(f)}
        if not values.get("secret"):
            values.pop("secret", None)
            if self.instance.pk is None:
                # Not generated here: showing it once would put it in the messages
                # cookie, which is signed, not encrypted (docs/SECURITY.md).
                self.add_error("secret", NEW_SECRET_HELP)
                return data
        try:
            cleaned = clean(values)
        except InvalidWebhook as exc:
            self.add_error(exc.context.get("field"), str(exc))
            return data
        data.update(cleaned)
        return data


@admin.register(Webhook)
class WebhookAdmin(OrbitModelAdmin):
    form = WebhookForm
    list_display = (
        "name",
        "url",
        "event_list",
        "enabled",
        "consecutive_failures",
        "disabled_at",
        "deliveries_link",
    )
    list_filter = ("enabled",)
    search_fields = ("name", "url")
    readonly_fields = (
        "consecutive_failures",
        "disabled_at",
        "disabled_reason",
        "retries",
        "deliveries_link",
        "created_at",
        "updated_at",
    )
    actions = ["enable_selected"]

    @admin.display(description="Events")
    def event_list(self, hook: Webhook) -> str:
        return ", ".join(hook.events)

    @admin.display(description="Deliveries")
    def deliveries_link(self, hook: Webhook) -> SafeString | str:
        if hook.pk is None:
            return "—"
        url = reverse("admin:runs_webhookdelivery_changelist") + f"?endpoint__id__exact={hook.pk}"
        return format_html('<a href="{}">Delivery log</a>', url)

    @admin.display(description="Retries")
    def retries(self, hook: Webhook) -> str:
        waits = ", ".join(f"{w:g} s" for w in RetrySchedule.from_settings().schedule())
        return f"After a failed attempt: {waits or 'none'} (ORBIT_WEBHOOK_BACKOFF_*)"

    # Saved through runs.webhook_lifecycle: validated again, audited in its transaction.
    def save_model(
        self, request: HttpRequest, obj: Webhook, form: ModelForm[Webhook], change: bool
    ) -> None:
        data = form.cleaned_data
        values = {f: data[f] for f in EDITABLE if f in data}
        if not values.get("secret"):
            values.pop("secret", None)
        if change:
            changed = {f: values[f] for f in values if f in form.changed_data}
            saved = webhook_update(obj.pk, changed, actor=_actor(request))
        else:
            saved = webhook_create(values, actor=_actor(request))
        obj.pk = saved.pk
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Webhook) -> None:
        webhook_delete(obj.pk, actor=_actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Webhook]) -> None:
        for hook in list(queryset):
            webhook_delete(hook.pk, actor=_actor(request))

    @admin.action(description="Enable the selected endpoints again", permissions=["change"])
    def enable_selected(self, request: HttpRequest, queryset: QuerySet[Webhook]) -> None:
        for hook in queryset.filter(enabled=False):
            webhook_enable(hook.pk, actor=_actor(request))
        self.message_user(request, "Enabled; their failure counts start again from 0.")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    """The delivery log: read only; 'send again' makes a new delivery of the same payload."""

    list_display = (
        "created_at",
        "event",
        "endpoint",
        "run_link",
        "status",
        "attempts",
        "response_code",
        "last_error_short",
        "next_attempt_at",
    )
    list_filter = ("status", "event", "endpoint")
    list_select_related = ("endpoint",)
    readonly_fields = (
        "id",
        "endpoint",
        "event",
        "run_link",
        "status",
        "attempts",
        "response_code",
        "last_error",
        "next_attempt_at",
        "last_attempt_at",
        "finished_at",
        "redelivery_of",
        "created_at",
        "payload_json",
    )
    fields = readonly_fields
    actions = ["redeliver"]

    def has_redeliver_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("runs.change_webhook"))

    @admin.display(description="Run")
    def run_link(self, delivery: WebhookDelivery) -> SafeString:
        url = reverse("dashboard:run", args=[delivery.run_id])
        return format_html('<a href="{}">{}</a>', url, str(delivery.run_id)[:13] + "…")

    @admin.display(description="Last error")
    def last_error_short(self, delivery: WebhookDelivery) -> str:
        error = delivery.last_error
        return (error[:80] + "…" if len(error) > 80 else error) or "—"

    @admin.display(description="Payload (the body sent)")
    def payload_json(self, delivery: WebhookDelivery) -> SafeString:
        return format_html('<pre class="code">{}</pre>', pretty_json(delivery.payload))

    @admin.action(description="Send the selected deliveries again", permissions=["redeliver"])
    def redeliver(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        sent, refused = 0, []
        for delivery in queryset:
            try:
                delivery_redeliver(delivery.id, actor=_actor(request))
                sent += 1
            except InvalidWebhook as exc:
                refused.append(str(exc))
        self.message_user(request, f"{sent} delivery(ies) queued to be sent again.")
        for message in dict.fromkeys(refused):
            self.message_user(request, message, messages.WARNING)
