"""Callers of the API: tokens for an admin, an operator, a viewer, and anonymous."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from orbit.core import roles
from orbit.core.tokens import create_token

VIEWER = ("runs.view_run", "runs.view_worker", "pipelines.view_pipeline")
OPERATOR = (*VIEWER, "runs.operate_run")


class Api:
    """A JSON client that sends `Authorization: Bearer <key>` (or nothing, when key is None)."""

    def __init__(self, key: str | None, client: Client | None = None) -> None:
        self.key = key
        self.client = client or Client()

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        return {**({"Authorization": f"Bearer {self.key}"} if self.key else {}), **(headers or {})}

    def get(self, path: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        return self.client.get(path, params or {}, headers=self._headers(kw.pop("headers", None)))

    def post(self, path: str, body: Any = None, *, raw: str | None = None, **kw: Any) -> Any:
        data = raw if raw is not None else ("" if body is None else json.dumps(body))
        return self.client.post(
            path, data, content_type="application/json", headers=self._headers(kw.get("headers"))
        )

    def patch(self, path: str, body: Any, **kw: Any) -> Any:
        return self.client.patch(
            path,
            json.dumps(body),
            content_type="application/json",
            headers=self._headers(kw.get("headers")),
        )

    def put(self, path: str, body: Any, **kw: Any) -> Any:
        return self.client.put(
            path,
            json.dumps(body),
            content_type="application/json",
            headers=self._headers(kw.get("headers")),
        )

    def delete(self, path: str, **kw: Any) -> Any:
        return self.client.delete(path, headers=self._headers(kw.get("headers")))


def make_user(username: str, permissions: tuple[str, ...] = (), **flags: Any) -> User:
    user = User.objects.create_user(username, password="pw-for-tests", **flags)
    for name in permissions:
        app_label, codename = name.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


@pytest.fixture
def admin_api(db, test_pipelines) -> Api:
    """A superuser's token: may do everything."""
    _, key = create_token(make_user("root", is_superuser=True, is_staff=True), "tests")
    return Api(key)


@pytest.fixture
def operator_api(db, test_pipelines) -> Api:
    _, key = create_token(make_user("operator", OPERATOR), "tests")
    return Api(key)


@pytest.fixture
def viewer_api(db, test_pipelines) -> Api:
    """Sees everything, may change nothing."""
    _, key = create_token(make_user("viewer", VIEWER), "tests")
    return Api(key)


@pytest.fixture
def anonymous_api(db, test_pipelines) -> Api:
    return Api(None)


def role_api(username: str, role: roles.Role) -> Api:
    """A token for a user given `role` as operators are (its group)."""
    user = User.objects.create_user(username, password="pw-for-tests")
    roles.assign_role(user, role)
    _, key = create_token(user, "tests")
    return Api(key)


@pytest.fixture
def alice(db, test_pipelines) -> Api:
    """An operator, by the role operators are given."""
    return role_api("alice", roles.OPERATOR)


@pytest.fixture
def viewer(db, test_pipelines) -> Api:
    return role_api("vera", roles.VIEWER)


def pipeline_id(name: str) -> int:
    from pipelines.models import Pipeline

    return Pipeline.objects.get(name=name).id
