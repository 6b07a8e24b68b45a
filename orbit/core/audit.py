"""The audit trail: who changed what, when, and from where.

The functions that change state (runs.lifecycle, pipelines.lifecycle, orbit.core.tokens) take
an `actor` and call `record` inside the transaction of their change, so a refused or
rolled-back action leaves no event. Entry points name the actor: a view builds it from
its request (`Actor.from_request`), the CLI with `Actor.cli()`. Code that passes no actor
records the one set with `acting(...)`, and otherwise `Actor(source=CODE)`; that is how
calls through modules that know nothing of actors (the executor behind `orbit run`) are
still attributed.

Events never hold secrets: tokens appear by prefix, never by key, and for metadata only
the names of changed keys are kept, since metadata may carry credentials.
"""

from __future__ import annotations

import getpass
import ipaddress
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import models

from orbit.core.clients import client_address
from orbit.core.models import AuditAction, AuditEvent, AuditSource

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
    from django.http import HttpRequest

#: Fields whose values may be secret: an event says which keys changed, not to what.
SECRET_VALUED = frozenset({"metadata", "default_metadata"})


@dataclass(frozen=True)
class Actor:
    """Who is acting and through what: a user on the web, an OS user on the CLI, a worker."""

    source: AuditSource
    name: str
    user: AbstractBaseUser | None = None
    ip_address: str | None = None

    @classmethod
    def from_request(cls, request: HttpRequest, source: AuditSource) -> Actor:
        """The request's user (set by the session, or by ApiTokenAuth for a token)."""
        user: AbstractBaseUser | AnonymousUser | None = getattr(request, "user", None)
        known = user if user is not None and user.is_authenticated else None
        return cls(
            source=source,
            name=known.get_username() if known else "anonymous",
            user=known,
            ip_address=_ip_address(request),
        )

    @classmethod
    def cli(cls) -> Actor:
        """The operating-system user running `orbit` or `manage.py`."""
        try:
            name = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry, e.g. in some containers
            name = "unknown"
        return cls(source=AuditSource.CLI, name=name)

    @classmethod
    def system(cls, source: AuditSource, name: str) -> Actor:
        """Orbit acting on its own: a schedule, a worker."""
        return cls(source=source, name=name)


def _ip_address(request: HttpRequest) -> str | None:
    """The client's address as the rate limiter sees it (proxies per ORBIT_TRUSTED_PROXIES)."""
    address = client_address(request)
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return None  # "unknown": no REMOTE_ADDR, e.g. a test client or a Unix socket
    return address


CODE = Actor(source=AuditSource.CODE, name="code")
_current: ContextVar[Actor] = ContextVar("orbit_audit_actor", default=CODE)


def current_actor() -> Actor:
    return _current.get()


@contextmanager
def acting(actor: Actor) -> Iterator[Actor]:
    """Attribute the actions in this block that name no actor to `actor`."""
    token = _current.set(actor)
    try:
        yield actor
    finally:
        _current.reset(token)


def record(
    action: AuditAction,
    target: models.Model,
    *,
    actor: Actor | None = None,
    changes: Mapping[str, Any] | None = None,
    label: str | None = None,
    target_id: Any = None,
) -> AuditEvent:
    """Add one event; call it inside the transaction of the change it describes.

    `label` names the target for people (default `str(target)`); `target_id` is for a
    row already deleted, whose pk is gone.
    """
    return AuditEvent.objects.create(
        **event_values(
            action, target, actor=actor, changes=changes, label=label, target_id=target_id
        )
    )


def event_values(
    action: AuditAction,
    target: models.Model,
    *,
    actor: Actor | None = None,
    changes: Mapping[str, Any] | None = None,
    label: str | None = None,
    target_id: Any = None,
) -> dict[str, Any]:
    """The columns of one event (`record`'s, and the one-statement enqueue's in
    the run store's inserts), `created_at` aside: the database stamps it."""
    actor = actor or current_actor()
    return {
        "action": action,
        "source": actor.source,
        "user_id": actor.user.pk if actor.user is not None else None,
        "actor": actor.name[:150],
        "ip_address": actor.ip_address,
        "target_type": target._meta.label_lower,
        "target_id": str(target.pk if target_id is None else target_id),
        "target_repr": (label or str(target))[:200],
        "changes": dict(changes or {}),
    }


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """`{field: [old, new]}` for each field that changed; secret-valued fields say only
    which of their keys changed: `{"default_metadata": {"changed_keys": [...]}}`."""
    changes: dict[str, Any] = {}
    for field in after:
        old, new = before.get(field), after[field]
        if old == new:
            continue
        if field in SECRET_VALUED:
            if keys := changed_keys(old, new):
                changes[field] = {"changed_keys": keys}
        else:
            changes[field] = [old, new]
    return changes


def changed_keys(old: Any, new: Any) -> list[str]:
    """The keys added, removed or given another value between two JSON objects."""
    old = old if isinstance(old, dict) else {}
    new = new if isinstance(new, dict) else {}
    return sorted(str(k) for k in old.keys() | new.keys() if old.get(k) != new.get(k))
