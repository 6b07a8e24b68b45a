"""`orbit pause --queue NAME | --pipeline NAME [--reason TEXT]`: hold a queue's or a
pipeline's queued runs (runs.pausing); new runs are still accepted and wait."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from orbit.cli import console, escape, refusals
from orbit.core.audit import Actor
from orbit.core.clock import db_now
from runs.enqueueing import get_pipeline
from runs.pausing import (
    Pause,
    pipeline_pause,
    pipeline_pause_of,
    queue_pause,
    queue_pause_of,
    validate_reason,
)


def add_target(parser: Any) -> None:
    """--queue NAME | --pipeline NAME, exactly one."""
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--queue", help="a queue's name (it need not hold runs yet)")
    target.add_argument("--pipeline", help="a pipeline's name")


def told(pause: Pause | None) -> str:
    """`paused by alice 3 min ago (SMTP down)`."""
    if pause is None:
        return "not paused"
    why = f" ({pause.reason})" if pause.reason else ""
    return pause.describe(db_now()) + why


class Command(BaseCommand):
    help = (
        "Pause a queue or a pipeline: its queued runs wait, unclaimed, until `orbit resume`; "
        "new runs are accepted and wait too; running runs finish. Exit 2 on bad input."
    )

    def add_arguments(self, parser: Any) -> None:
        add_target(parser)
        parser.add_argument("--reason", default="", help="why, for the operators who see it")

    def handle(self, *args: Any, **options: Any) -> None:
        out = console()
        actor = Actor.cli()
        with refusals(out):
            reason = validate_reason(options["reason"])
            if options["queue"] is not None:
                label = f"Queue {options['queue']!r}"
                done = queue_pause(options["queue"], reason=reason, actor=actor)
                pause = queue_pause_of(options["queue"])
            else:
                row = get_pipeline(options["pipeline"])
                label = f"Pipeline {row.name!r}"
                done = pipeline_pause(row, reason=reason, actor=actor)
                pause = pipeline_pause_of(row)
        if done:
            out.print(f"{escape(label)} {escape(told(pause))}: its queued runs wait.")
        else:
            out.print(f"{escape(label)} was already {escape(told(pause))}; left as it was.")
