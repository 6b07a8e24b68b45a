"""Roles: viewer, operator and admin, each a Django group of permissions.

The admin, the dashboard and the API all ask `user.has_perm(...)`, so a role grants the
same things everywhere, and an API token acts with its user's permissions. The groups
are created by the migration orbit/0003_roles; `python manage.py setrole USERNAME ROLE`
puts a user in one. Superusers hold every permission whatever their groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.contrib.auth.models import Group
from django.db import transaction

if TYPE_CHECKING:
    from django.contrib.auth.models import User

VIEW = (
    "pipelines.view_pipeline",
    "runs.view_run",
    "runs.view_step",
    "runs.view_stepattempt",
    "runs.view_worker",
    "services.view_veryfidocument",
    "orbit.view_apitoken",  # names and prefixes only: keys are never stored
    "orbit.view_auditevent",
)
OPERATE = (
    "runs.operate_run",  # run now, retry, cancel, resume
    "pipelines.operate_pipeline",  # enable, disable, pause, resume, archive, unarchive
)
ADMINISTER = (
    "pipelines.add_pipeline",
    "pipelines.change_pipeline",
    "pipelines.delete_pipeline",
    "orbit.add_apitoken",
    "orbit.change_apitoken",  # revoke
    "services.delete_veryfidocument",
    # Webhooks hold secrets and make workers reach addresses: admins only (docs/WEBHOOKS.md).
    "runs.view_webhook",
    "runs.add_webhook",
    "runs.change_webhook",  # also: enable again, send a delivery again
    "runs.delete_webhook",
    "runs.view_webhookdelivery",
)


@dataclass(frozen=True)
class Role:
    name: str
    group: str
    permissions: tuple[str, ...]


VIEWER = Role("viewer", "Orbit viewers", VIEW)
OPERATOR = Role("operator", "Orbit operators", VIEW + OPERATE)
ADMIN = Role("admin", "Orbit admins", VIEW + OPERATE + ADMINISTER)
ROLES = {role.name: role for role in (VIEWER, OPERATOR, ADMIN)}


def assign_role(user: User, role: Role) -> None:
    """Make `user` a staff member with exactly this one of Orbit's roles.

    Staff status is what lets a user log in to the admin and dashboard; the role's
    permissions decide what they see and do there. Other groups are left alone.
    """
    with transaction.atomic():
        others = Group.objects.filter(name__in=[r.group for r in ROLES.values() if r != role])
        user.groups.remove(*others)
        user.groups.add(Group.objects.get(name=role.group))
        if not user.is_staff:
            user.is_staff = True
            user.save(update_fields=["is_staff"])


def role_of(user: User) -> Role | None:
    """The highest Orbit role among the user's groups, if any."""
    groups = set(user.groups.values_list("name", flat=True))
    for role in (ADMIN, OPERATOR, VIEWER):
        if role.group in groups:
            return role
    return None
