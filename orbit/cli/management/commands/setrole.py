"""`python manage.py setrole USERNAME {viewer,operator,admin} [--create]`: give a user a role."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser

from orbit.core.roles import ROLES, assign_role


class Command(BaseCommand):
    help = (
        "Make a user a staff member with one of Orbit's roles: viewer (sees everything), "
        "operator (also runs, retries, cancels, resumes, enables and disables), admin (also "
        "edits pipelines and manages API tokens)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("role", choices=sorted(ROLES))
        parser.add_argument(
            "--create",
            action="store_true",
            help="Create the user if missing, with no password (for API tokens only; "
            "set one with `manage.py changepassword` to log in).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        username, role = options["username"], ROLES[options["role"]]
        user = User.objects.filter(**{User.USERNAME_FIELD: username}).first()
        if user is None:
            if not options["create"]:
                raise CommandError(f"No user named {username!r} (add --create to create one)")
            user = User.objects.create_user(**{User.USERNAME_FIELD: username}, password=None)
        try:
            assign_role(user, role)
        except Group.DoesNotExist:
            raise CommandError(
                f"The group {role.group!r} is missing: run `python manage.py migrate`"
            ) from None
        note = " (a superuser: it holds every permission anyway)" if user.is_superuser else ""
        self.stdout.write(f"{user.get_username()} is now an Orbit {role.name}{note}.")
