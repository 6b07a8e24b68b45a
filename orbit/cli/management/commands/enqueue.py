"""`orbit enqueue PIPELINE [--metadata JSON] [--queue Q] [--delay 30s | --at ISO]
[--priority N] [--idempotency-key K]`: queue a run for the workers (runs.enqueueing)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand

from orbit.cli import console, escape, metadata_option, refusals
from orbit.core.audit import Actor
from orbit.core.exceptions import OrbitError
from runs.enqueueing import enqueue, parse_delay


class Command(BaseCommand):
    help = (
        "Queue a run of PIPELINE for the workers: on a queue, now or later, with a priority "
        "and an idempotency key. Prints the run's id; exit 2 on bad input (nothing queued)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("pipeline")
        parser.add_argument("--metadata", default=None, help="the run's input, a JSON object")
        parser.add_argument(
            "--queue", default=None, help="the queue (default: the definition's, else default)"
        )
        when = parser.add_mutually_exclusive_group()
        when.add_argument("--delay", default=None, help="not before this long: 30s, 5m, 2h")
        when.add_argument("--at", default=None, help="not before this ISO 8601 moment")
        parser.add_argument("--priority", type=int, default=0, help="higher runs first")
        parser.add_argument(
            "--idempotency-key",
            default=None,
            help="a repeat with the same key returns the first run (a different input: error)",
        )
        parser.add_argument(
            "--unique-key",
            default=None,
            help="while a pending or running run of the pipeline holds this key, return it",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        out = console()
        with refusals(out):
            metadata = None
            if options["metadata"] is not None:
                metadata = metadata_option(options["metadata"])
            delay = parse_delay(options["delay"]) if options["delay"] is not None else None
            run_after = None
            if options["at"] is not None:
                try:
                    run_after = datetime.fromisoformat(options["at"])
                except ValueError:
                    raise OrbitError(f"--at {options['at']!r} is not an ISO 8601 time") from None
            run = enqueue(
                options["pipeline"],
                metadata,
                queue=options["queue"],
                priority=options["priority"],
                run_after=run_after,
                delay=delay,
                idempotency_key=options["idempotency_key"],
                unique_key=options["unique_key"],
                actor=Actor.cli(),
            )
        when = (
            f", scheduled for {run.available_at.isoformat()}"
            if run.delayed_until(run.created_at)
            else ""
        )
        out.print(
            f"[green]Run {run.id} queued[/green]: {escape(run.pipeline.name)} on queue "
            f"{escape(run.queue)}{escape(when)}"
        )
