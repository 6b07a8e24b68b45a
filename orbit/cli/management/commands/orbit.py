"""`python manage.py orbit ...` is the `orbit` command line."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "The orbit command line: list, run, worker, check-interrupted, recover, resume, ..."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("args", nargs="*")

    def run_from_argv(self, argv: list[str]) -> None:
        # Everything after "orbit" belongs to the orbit CLI, options included.
        from orbit.cli import main

        raise SystemExit(main(argv[2:]))

    def handle(self, *args: Any, **options: Any) -> None:
        from orbit.cli import main

        code = main(list(args))
        if code:
            raise SystemExit(code)
