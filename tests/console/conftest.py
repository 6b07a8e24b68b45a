from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User


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
