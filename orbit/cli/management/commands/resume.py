"""`orbit resume RUN_ID`: execute a pending or interrupted run now, in the foreground."""

from __future__ import annotations

import json
import logging
from typing import Any

from django.core.management.base import BaseCommand

from orbit.cli import console
from orbit.core.audit import Actor
from orbit.core.exceptions import OrbitError
from runs.foreground import resume
from runs.recovery import run_resume


class Command(BaseCommand):
    help = "Execute an interrupted (or pending) run now, from its first unfinished step."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("run_id")

    def handle(self, *args: Any, **options: Any) -> None:
        from orbit.cli import ProgressPrinter, escape

        out = console()
        logging.getLogger("runs").setLevel(logging.CRITICAL)
        try:
            run_resume(options["run_id"], actor=Actor.cli())  # queued and audited first
            result = resume(options["run_id"], on_event=ProgressPrinter(out))
        except OrbitError as exc:
            out.print(f"[red]{escape(str(exc))}[/red]")
            raise SystemExit(2) from None
        if result.success:
            out.print(f"[green]Run {result.run_id} succeeded[/green] in {result.duration:.2f} s")
            out.print_json(json.dumps(result.results))
            return
        out.print(f"[red]Run {result.run_id} {result.status}:[/red] {escape(result.error)}")
        raise SystemExit(1)
