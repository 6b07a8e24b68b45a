"""`orbit resume RUN_ID`: execute a pending or interrupted run now, in the foreground.
`orbit resume --queue NAME | --pipeline NAME`: resume a paused queue or pipeline."""

from __future__ import annotations

import json
import logging
from typing import Any

from django.core.management.base import BaseCommand

from orbit.cli import console, refusals
from orbit.core.audit import Actor
from runs.enqueueing import get_pipeline
from runs.foreground import resume
from runs.pausing import pipeline_resume, queue_resume
from runs.recovery import run_resume


class Command(BaseCommand):
    help = (
        "Execute an interrupted (or pending) run now, from its first unfinished step; or, "
        "with --queue or --pipeline, resume a paused queue or pipeline."
    )

    def add_arguments(self, parser: Any) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("run_id", nargs="?")
        target.add_argument("--queue", help="resume this paused queue")
        target.add_argument("--pipeline", help="resume this paused pipeline")

    def handle(self, *args: Any, **options: Any) -> None:
        from orbit.cli import ProgressPrinter, escape

        out = console()
        if options["run_id"] is None:
            self.resume_paused(out, options)
            return
        logging.getLogger("runs").setLevel(logging.CRITICAL)
        with refusals(out):
            run_resume(options["run_id"], actor=Actor.cli())  # queued and audited first
            result = resume(options["run_id"], on_event=ProgressPrinter(out))
        if result.success:
            out.print(f"[green]Run {result.run_id} succeeded[/green] in {result.duration:.2f} s")
            out.print_json(json.dumps(result.results))
            return
        out.print(f"[red]Run {result.run_id} {result.status}:[/red] {escape(result.error)}")
        raise SystemExit(1)

    def resume_paused(self, out: Any, options: dict[str, Any]) -> None:
        """Resume a queue or a pipeline; its runs are claimable at once (exit 2: bad name)."""
        from orbit.cli import escape

        with refusals(out):
            if options["queue"] is not None:
                label = f"Queue {options['queue']!r}"
                done = queue_resume(options["queue"], actor=Actor.cli())
            else:
                row = get_pipeline(options["pipeline"])
                label = f"Pipeline {row.name!r}"
                done = pipeline_resume(row, actor=Actor.cli())
        if done:
            out.print(f"{escape(label)} resumed: its queued runs are claimable now.")
        else:
            out.print(f"{escape(label)} was not paused; nothing to resume.")
