from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Now


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiToken(models.Model):
    """A key a program sends as `Authorization: Bearer <key>`; it acts as its user.

    Only a hash of the key is stored: the key is shown once, when it is created.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. 'ci-deploys'.")
    prefix = models.CharField(
        max_length=16, unique=True, editable=False, help_text="Public part of the key, for lookup."
    )
    key_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def revoke(self) -> None:
        """Refuse the key from now on; the row stays, so who used what remains visible."""
        if self.revoked_at is None:
            self.revoked_at = Now()
            self.save(update_fields=["revoked_at"])
            self.refresh_from_db(fields=["revoked_at"])
