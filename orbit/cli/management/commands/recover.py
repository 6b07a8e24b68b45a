"""`orbit recover [--auto-resume]`: report interrupted runs, or queue them again."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from orbit.cli import console
from orbit.cli.management.commands.check_interrupted import interrupted_table
from orbit.core.audit import Actor, acting
from runs.recovery import recover_interrupted


class Command(BaseCommand):
    help = "Report interrupted runs; with --auto-resume, put them back in the queue."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--auto-resume",
            action="store_true",
            help="Queue every interrupted run again (at its first unfinished step).",
        )

    def handle(self, *args: Any, **options: Any) -> None:

        out = console()
        if not options["auto_resume"]:
            report = recover_interrupted(auto_resume=False)
            if not report.interrupted:
                out.print("No interrupted runs.")
                return
            out.print(
                interrupted_table(
                    report.interrupted, f"{len(report.interrupted)} interrupted run(s)"
                )
            )
            out.print("Nothing changed. Run `orbit recover --auto-resume` to queue them again.")
            return
        with acting(Actor.cli()):
            report = recover_interrupted(auto_resume=True)
        out.print(f"Re-queued {len(report.recovered)} interrupted run(s).")
        if report.quarantined:
            out.print(
                f"Quarantined {len(report.quarantined)} run(s) that interrupted their workers too often: "
                + ", ".join(str(r) for r in report.quarantined)
            )
