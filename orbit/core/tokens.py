"""API tokens: made, checked and revoked here; the admin, the command and the API call this.

A key reads `orbit_<prefix>_<secret>`. The prefix finds the row; the whole key is checked
against its SHA-256 hash. A fast hash is enough because the secret is 256 random bits,
not a password: nobody can guess it, and checking stays cheap on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from orbit.core.audit import Actor, record
from orbit.core.models import ApiToken, AuditAction

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)

KEY_PREFIX = "orbit_"
#: last_used_at is written at most this often per token, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenRefused(Exception):
    """The bearer key is not a valid, active API token."""


def create_token(
    user: User,
    name: str,
    *,
    expires_at: datetime | None = None,
    actor: Actor | None = None,
) -> tuple[ApiToken, str]:
    """Make a token for `user`, valid until `expires_at` (None: until revoked); returns the
    row and the key, which is never shown again."""
    name = name.strip()
    if not name:
        raise ValueError("A token needs a name saying what it is for")
    if len(name) > 100:
        raise ValueError("A token name is at most 100 characters")
    if expires_at is not None and expires_at <= timezone.now():
        raise ValueError("A token's expiry must be in the future")
    prefix = secrets.token_hex(4)
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user, name=name, prefix=prefix, key_hash=_hash(key), expires_at=expires_at
        )
        _record(AuditAction.TOKEN_CREATED, token, actor)
    logger.info(
        "API token %s created for %s",
        prefix,
        user.get_username(),
        extra={"event": "api_token_created", "token": prefix, "user": user.get_username()},
    )
    return token, key


def user_for_key(key: str) -> User:
    """The active user an active key belongs to; TokenRefused says why not."""
    prefix = _prefix_of(key)
    # Expiry by the database's clock, in the same query: every web host agrees on it.
    token = (
        ApiToken.objects.select_related("user")
        .annotate(expired=Q(expires_at__lte=Now()))
        .filter(prefix=prefix)
        .first()
    )
    if token is None or not hmac.compare_digest(token.key_hash, _hash(key)):
        raise TokenRefused("Invalid API token")
    if token.revoked_at is not None:
        raise TokenRefused("This API token was revoked")
    if token.expires_at is not None and token.expired:  # type: ignore[attr-defined]
        raise TokenRefused(f"This API token expired on {token.expires_at:%Y-%m-%d %H:%M:%S} UTC")
    if not token.user.is_active:
        raise TokenRefused("The user of this API token is inactive")
    _touch(token)
    return token.user


def revoke_token(token: ApiToken, *, actor: Actor | None = None) -> bool:
    """Refuse the token's key from now on; False when it was already revoked."""
    if token.revoked_at is not None:
        return False
    with transaction.atomic():
        token.revoke()
        _record(AuditAction.TOKEN_REVOKED, token, actor)
    logger.info(
        "API token %s revoked",
        token.prefix,
        extra={"event": "api_token_revoked", "token": token.prefix},
    )
    return True


def _record(action: AuditAction, token: ApiToken, actor: Actor | None) -> None:
    """The token by name, prefix and user; never its key or hash."""
    changes = {"name": token.name, "prefix": token.prefix, "user": token.user.get_username()}
    record(action, token, actor=actor, changes=changes)


def _prefix_of(key: str) -> str:
    if not key.startswith(KEY_PREFIX):
        raise TokenRefused("Invalid API token")
    prefix, _, secret = key[len(KEY_PREFIX) :].partition("_")
    if len(prefix) != 8 or not secret:
        raise TokenRefused("Invalid API token")
    return prefix


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _touch(token: ApiToken) -> None:
    """Record the use, at most once a minute, so busy clients do not write on every call."""
    if token.last_used_at and timezone.now() - token.last_used_at < LAST_USED_RESOLUTION:
        return
    ApiToken.objects.filter(id=token.id).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=Now() - LAST_USED_RESOLUTION)
    ).update(last_used_at=Now())
