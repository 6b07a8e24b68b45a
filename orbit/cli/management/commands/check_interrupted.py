"""`orbit check-interrupted`: runs whose worker died, and why they count as interrupted."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from orbit.cli import console
from runs.recovery import InterruptedRun, find_interrupted


def interrupted_table(rows: list[InterruptedRun], title: str) -> Any:
    from rich.table import Table

    from orbit.cli import escape

    table = Table(title=title)
    for column in ("run", "pipeline", "step", "worker", "lease expired", "why"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row.run_id),
            escape(row.pipeline),
            escape(row.step),
            escape(row.worker),
            f"{row.expired_seconds_ago:.1f} s ago",
            escape(row.reason),
        )
    return table


class Command(BaseCommand):
    help = "List running runs whose lease has expired (their worker died, froze or was cut off)."

    def handle(self, *args: Any, **options: Any) -> None:

        rows = find_interrupted()
        out = console()
        if not rows:
            out.print("No interrupted runs.")
            return
        out.print(interrupted_table(rows, f"{len(rows)} interrupted run(s)"))
        out.print("Run `orbit recover --auto-resume` to queue them again.")
