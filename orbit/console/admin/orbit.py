"""The admin for API tokens (create, revoke) and the audit trail (read only)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html
from django.utils.safestring import SafeString

from orbit.console.admin.base import OrbitModelAdmin, ReadOnlyAdmin
from orbit.console.dashboard.present import pretty_json
from orbit.core.audit import Actor
from orbit.core.models import ApiToken, AuditEvent, AuditSource
from orbit.core.tokens import create_token, revoke_token


class ApiTokenForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = ApiToken
        fields = ("user", "name", "expires_at")

    def clean_expires_at(self) -> Any:
        value = self.cleaned_data.get("expires_at")
        if value is not None and value <= timezone.now():
            raise forms.ValidationError("A token's expiry must be in the future.")
        return value


@admin.register(ApiToken)
class ApiTokenAdmin(OrbitModelAdmin):
    form = ApiTokenForm
    list_display = (
        "name",
        "user",
        "prefix",
        "state",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("name", "prefix", "user__username")
    list_select_related = ("user",)
    readonly_fields = ("prefix", "state", "created_at", "last_used_at", "expires_at", "revoked_at")
    actions = ["revoke"]

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> Any:
        if obj is None:
            return ["user", "name", "expires_at"]
        return [
            "user",
            "name",
            "prefix",
            "state",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
        ]

    @admin.display(description="State")
    def state(self, token: ApiToken) -> str:
        if token.revoked_at is not None:
            return "revoked"
        if token.expires_at is not None and token.expires_at <= timezone.now():
            return "expired"
        return "active"

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> Any:
        return ("user", *self.readonly_fields) if obj else ()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Tokens are revoked, not deleted, so who held which token stays on record."""
        return False

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        # A token acts as its user: only a superuser may make one for someone else, or
        # an admin could act as (and be audited as) any other user, superusers included.
        if db_field.name == "user" and not request.user.is_superuser:
            kwargs["queryset"] = get_user_model().objects.filter(pk=request.user.pk or 0)
            kwargs["initial"] = request.user.pk
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(
        self, request: HttpRequest, obj: ApiToken, form: ModelForm[ApiToken], change: bool
    ) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        token, key = create_token(
            obj.user,
            obj.name,
            expires_at=obj.expires_at,
            actor=Actor.from_request(request, AuditSource.ADMIN),
        )
        obj.pk, obj.prefix, obj.created_at = token.pk, token.prefix, token.created_at
        obj._state.adding = False
        # For response_add only: the key goes into this one page, never into the messages
        # cookie (signed, not encrypted) or the session.
        request._orbit_new_key = key  # type: ignore[attr-defined]

    def response_add(
        self, request: HttpRequest, obj: ApiToken, post_url_continue: str | None = None
    ) -> HttpResponse:
        key = getattr(request, "_orbit_new_key", None)
        if key is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "title": "Copy the new token's key",
            "opts": self.model._meta,
            "token": obj,
            "key": key,
        }
        response = TemplateResponse(request, "admin/orbit/apitoken/created.html", context)
        add_never_cache_headers(response)
        return response

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        actor = Actor.from_request(request, AuditSource.ADMIN)
        revoked = sum(
            revoke_token(token, actor=actor)
            for token in queryset.filter(revoked_at__isnull=True).select_related("user")
        )
        self.message_user(request, f"Revoked {revoked} token(s).", messages.SUCCESS)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """The audit trail, read only: events are added by the actions they record, never by hand."""

    list_display = ("created_at", "action", "actor", "source", "ip_address", "target_link")
    list_filter = ("action", "source", "created_at")
    search_fields = ("=target_id", "target_repr", "actor")
    search_help_text = "An exact run or row id, the target's name, or who acted."
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-id")
    show_full_result_count = False
    fields = (
        "created_at",
        "action",
        "actor",
        "user",
        "source",
        "ip_address",
        "target_type",
        "target_id",
        "target_link",
        "changes_json",
    )
    readonly_fields = fields

    @admin.display(description="Target")
    def target_link(self, event: AuditEvent) -> SafeString | str:
        app_label, _, model = event.target_type.partition(".")
        try:
            url = reverse(f"admin:{app_label}_{model}_change", args=[event.target_id])
        except NoReverseMatch:
            return event.target_repr
        return format_html('<a href="{}">{}</a>', url, event.target_repr)

    @admin.display(description="Changes")
    def changes_json(self, event: AuditEvent) -> SafeString:
        return format_html('<pre class="code">{}</pre>', pretty_json(event.changes))


# Django's own users and groups admins, on the same footing as Orbit's: only their listed
# filters (no `?password__startswith=`), searches rate-limited.
class OrbitUserAdmin(OrbitModelAdmin, UserAdmin):  # type: ignore[type-arg]
    pass


class OrbitGroupAdmin(OrbitModelAdmin, GroupAdmin):
    pass


for _model, _admin in ((get_user_model(), OrbitUserAdmin), (Group, OrbitGroupAdmin)):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _admin)
