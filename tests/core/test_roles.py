"""The role groups the migration creates, and `manage.py setrole`."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command

from orbit.core.roles import ADMIN, OPERATOR, ROLES, VIEWER, role_of

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("role", list(ROLES.values()), ids=list(ROLES))
def test_the_migration_creates_each_group_with_exactly_the_roles_permissions(role):
    group = Group.objects.get(name=role.group)
    held = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}
    assert held == set(role.permissions)


def test_a_viewer_may_only_view():
    assert all(p.split(".")[1].startswith("view_") for p in VIEWER.permissions)


def test_each_role_holds_the_one_below_it():
    assert set(VIEWER.permissions) < set(OPERATOR.permissions) < set(ADMIN.permissions)


def setrole(*args: str) -> str:
    out = StringIO()
    call_command("setrole", *args, stdout=out)
    return out.getvalue()


def test_setrole_makes_a_staff_member_with_the_role():
    user = User.objects.create_user("ann")
    assert setrole("ann", "operator") == "ann is now an Orbit operator.\n"
    user.refresh_from_db()
    assert user.is_staff
    assert role_of(user) == OPERATOR
    assert user.has_perm("runs.operate_run")
    assert not user.has_perm("pipelines.change_pipeline")


def test_setrole_replaces_the_previous_role_and_keeps_other_groups():
    user = User.objects.create_user("ann")
    user.groups.add(Group.objects.create(name="billing"))
    setrole("ann", "admin")
    setrole("ann", "viewer")
    assert sorted(user.groups.values_list("name", flat=True)) == ["Orbit viewers", "billing"]


def test_setrole_creates_a_user_without_a_password_when_asked():
    assert setrole("ci-bot", "operator", "--create") == "ci-bot is now an Orbit operator.\n"
    user = User.objects.get(username="ci-bot")
    assert not user.has_usable_password()


def test_setrole_refuses_an_unknown_user():
    with pytest.raises(
        CommandError, match=r"^No user named 'nobody' \(add --create to create one\)$"
    ):
        setrole("nobody", "viewer")


def test_setrole_refuses_an_unknown_role():
    User.objects.create_user("ann")
    with pytest.raises(CommandError, match="invalid choice: 'root'"):
        setrole("ann", "root")


def test_setrole_says_a_superuser_holds_everything_anyway():
    User.objects.create_superuser("root", "r@x.org", "pw")
    assert setrole("root", "viewer") == (
        "root is now an Orbit viewer (a superuser: it holds every permission anyway).\n"
    )
