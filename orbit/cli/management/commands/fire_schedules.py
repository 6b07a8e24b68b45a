"""`orbit fire-schedules [--now ISO]`: fire the cron slots that are due, once.

Workers do this on their own every ORBIT_SCHEDULE_INTERVAL seconds; the command is for
cron-less hosts, checks by hand, and replaying a moment with `--now`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from orbit.core.conf import orbit_settings
from runs.scheduler import fire_due_schedules


def iso_time(value: str) -> datetime:
    """An ISO 8601 time; without an offset it is read in ORBIT_SCHEDULE_TIMEZONE."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(
            f"--now {value!r} is not an ISO 8601 time such as 2026-03-29T03:00:00+02:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=orbit_settings.schedule_timezone)
    return moment


class Command(BaseCommand):
    help = "Create the runs of every schedule slot that is due now (or at --now)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--now",
            help="Fire as if it were this ISO 8601 time (default: the database clock).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        now = iso_time(options["now"]) if options["now"] else None
        runs = fire_due_schedules(now)
        for run in runs:
            slot = run.scheduled_for.astimezone(orbit_settings.schedule_timezone)  # type: ignore[union-attr]
            self.stdout.write(f"{run.pipeline.name}\t{slot.isoformat()}\t{run.id}")
        self.stdout.write(f"Fired {len(runs)} run{'' if len(runs) == 1 else 's'}.")
