"""`orbit queues`: each queue with its pending, due and running runs and its pause."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from orbit.cli import console, escape
from orbit.cli.management.commands.pause import told
from runs.pausing import queue_states


class Command(BaseCommand):
    help = "List the queues that hold pending or running runs, or are paused, with their counts."

    def handle(self, *args: Any, **options: Any) -> None:
        from rich.table import Table

        out = console()
        states = queue_states()
        if not states:
            out.print("No queue holds a pending or running run, and none is paused.")
            return
        table = Table()
        for column in ("queue", "pending", "due", "running", "state"):
            table.add_column(column)
        for state in states:
            table.add_row(
                escape(state.queue),
                str(state.pending),
                str(state.due),
                str(state.running),
                f"[yellow]{escape(told(state.pause))}[/yellow]" if state.pause else "active",
            )
        out.print(table)
