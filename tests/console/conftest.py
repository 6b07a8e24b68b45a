from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User

from orbit.core.models import AuditEvent
from orbit.core.roles import OPERATOR, VIEWER, Role, assign_role


@pytest.fixture
def make_user(db):
    """A user with exactly the permissions named ("runs.view_run", ...)."""

    def make(*perms: str, staff: bool = True, username: str = "op") -> User:
        user = User.objects.create_user(username, password="pw", is_staff=staff)
        for perm in perms:
            app, codename = perm.split(".")
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label=app, codename=codename)
            )
        return user

    return make


@pytest.fixture
def operator(make_user):
    return make_user(
        "runs.view_run",
        "runs.operate_run",
        "runs.view_worker",
        "runs.view_step",
        "runs.view_stepattempt",
        "pipelines.view_pipeline",
        "pipelines.operate_pipeline",
    )


@pytest.fixture
def op_client(client, operator):
    client.force_login(operator)
    return client


def login(client, username: str, role: Role) -> User:
    """A user given `role` as operators are (its group), logged in on `client`."""
    user = User.objects.create_user(username, password="pw")
    assign_role(user, role)
    client.force_login(user)
    return user


@pytest.fixture
def alice(client, test_pipelines):
    """The test client, logged in as alice, an operator."""
    login(client, "alice", OPERATOR)
    return client


@pytest.fixture
def viewer(client, test_pipelines):
    """The test client, logged in as vera, a viewer."""
    login(client, "vera", VIEWER)
    return client


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def audit(action: str) -> list[tuple[str, str, str]]:
    """The events of `action`, oldest first: (source, actor, target id)."""
    return list(
        AuditEvent.objects.filter(action=action)
        .order_by("id")
        .values_list("source", "actor", "target_id")
    )
