"""`python manage.py createapitoken USERNAME [--name NAME]`: print a new API key once."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from orbit.core.audit import Actor
from orbit.core.tokens import create_token


class Command(BaseCommand):
    help = "Create an API token for a user and print its key (shown only this once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="What the token is for (default: cli).")

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: options["username"]})
        except User.DoesNotExist:
            raise CommandError(f"No user named {options['username']!r}") from None
        if not user.is_active:
            raise CommandError(f"User {options['username']!r} is inactive")
        try:
            token, key = create_token(user, options["name"], actor=Actor.cli())
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write(
            f"Created token {token.name!r} ({token.prefix}) for {user.get_username()}. "
            "Store the key now; it is not shown again:"
        )
        self.stdout.write(key)
