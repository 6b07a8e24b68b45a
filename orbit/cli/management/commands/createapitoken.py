"""`python manage.py createapitoken USERNAME [--name NAME] [--expires-in 30d]`: print a
new API key once."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from orbit.core.audit import Actor
from orbit.core.conf import AGE_UNITS, bounded_age
from orbit.core.tokens import create_token


class Command(BaseCommand):
    help = "Create an API token for a user and print its key (shown only this once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="What the token is for (default: cli).")
        parser.add_argument(
            "--expires-in",
            metavar="DURATION",
            help="Refuse the key after this long: 30d, 12h, 90m, 2w or 3600s (default: never).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: options["username"]})
        except User.DoesNotExist:
            raise CommandError(f"No user named {options['username']!r}") from None
        if not user.is_active:
            raise CommandError(f"User {options['username']!r} is inactive")
        expires_at = None
        if options["expires_in"] is not None:
            expires_at = timezone.now() + duration(options["expires_in"])
        try:
            token, key = create_token(
                user, options["name"], expires_at=expires_at, actor=Actor.cli()
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        expiry = (
            f" It expires on {token.expires_at:%Y-%m-%d %H:%M:%S} UTC." if token.expires_at else ""
        )
        self.stderr.write(
            f"Created token {token.name!r} ({token.prefix}) for {user.get_username()}.{expiry} "
            "Store the key now; it is not shown again:"
        )
        self.stdout.write(key)


_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, **AGE_UNITS}


def duration(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `2w`, `3600s` or plain seconds as a timedelta, at most MAX_AGE;
    CommandError (exit 2: bad input) else."""
    match = _DURATION.match(text)
    if not match or int(match[1]) == 0:
        raise CommandError(
            "--expires-in must be a positive duration such as 30d, 12h, 90m, 2w or 3600s, "
            f"not {text!r}",
            returncode=2,
        )
    try:
        return bounded_age("--expires-in", repr(text), int(match[1]) * _UNITS[match[2]])
    except ImproperlyConfigured as exc:
        raise CommandError(str(exc), returncode=2) from None
