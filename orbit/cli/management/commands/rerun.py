"""`orbit rerun RUN_ID [--metadata JSON]`: queue a run's pipeline again, with its input or
an edited one."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from orbit.cli import console, escape, metadata_option, refusals
from orbit.core.audit import Actor
from runs.lifecycle import run_rerun


class Command(BaseCommand):
    help = (
        "Queue a new run of a run's pipeline, linked to it: with the same metadata, or with "
        "--metadata (a JSON object). Every step runs again; a worker picks it up."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("run_id")
        parser.add_argument(
            "--metadata",
            default=None,
            help="the new run's input, a JSON object (default: the run's)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        out = console()
        with refusals(out):
            metadata = None
            if options["metadata"] is not None:
                metadata = metadata_option(options["metadata"])
            run = run_rerun(options["run_id"], metadata=metadata, actor=Actor.cli())
        out.print(
            f"[green]Run {run.id} queued[/green]: {escape(run.pipeline.name)} again, "
            f"a rerun of {options['run_id']}"
        )
