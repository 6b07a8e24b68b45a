"""`orbit recover [--auto-resume]`: report interrupted runs, or queue them again."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from runs.management.commands.check_interrupted import interrupted_table
from runs.recovery import recover_interrupted


class Command(BaseCommand):
    help = "Report interrupted runs; with --auto-resume, put them back in the queue."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--auto-resume", action="store_true",
                            help="Queue every interrupted run again (at its first unfinished step).")

    def handle(self, *args: Any, **options: Any) -> None:
        from rich.console import Console

        console = Console(highlight=False)
        if not options["auto_resume"]:
            report = recover_interrupted(auto_resume=False)
            if not report.interrupted:
                console.print("No interrupted runs.")
                return
            console.print(interrupted_table(report.interrupted, f"{len(report.interrupted)} interrupted run(s)"))
            console.print("Nothing changed. Run `orbit recover --auto-resume` to queue them again.")
            return
        report = recover_interrupted(auto_resume=True)
        console.print(f"Re-queued {len(report.recovered)} interrupted run(s).")
        if report.quarantined:
            console.print(
                f"Quarantined {len(report.quarantined)} run(s) that interrupted their workers too often: "
                + ", ".join(str(r) for r in report.quarantined)
            )
