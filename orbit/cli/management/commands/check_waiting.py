"""`orbit check-waiting`: due runs no live worker can claim, and which worker they need."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from orbit.cli import console, escape
from runs.metrics import WaitingRuns, waiting_runs


def waiting_table(rows: list[WaitingRuns]) -> Any:
    from rich.table import Table

    table = Table(title="Runs waiting for a worker that can run them")
    for column in ("definition", "queue", "runs", "steps no live worker defines", "why"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            escape(row.definition),
            escape(row.queue),
            str(row.runs),
            escape(", ".join(row.steps)) or "-",
            escape(row.reason),
        )
    return table


class Command(BaseCommand):
    help = (
        "List due runs that no live worker can claim: no worker defines their pipeline, serves "
        "their queue, or knows every step they have left (a rolling deploy in progress)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        rows = waiting_runs()
        out = console()
        if not rows:
            out.print("No runs are waiting for a worker that can run them.")
            return
        out.print(waiting_table(rows))
        out.print(
            "Start a worker with the pipeline's module in ORBIT_PIPELINE_MODULES (and the "
            "queue in --queue); see docs/WORKER-DEPLOYMENT.md, rolling deploys."
        )
