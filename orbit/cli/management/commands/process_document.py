"""`orbit process-document PATH [--user-id ID] [--enqueue]`: run the document-processing
pipeline for one file in the foreground (or queue it for the workers) and print what
Veryfi extracted.

PATH is a file on this host, read with the CLI user's own permissions: runs read only
from ORBIT_DOCUMENTS_ROOT, so a file outside it is copied in first (`uploads/...`)."""

from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from orbit.core.exceptions import OrbitError
from services import conf
from services.documents import run_metadata

PIPELINE = "document-processing"


class Command(BaseCommand):
    help = "Upload a document to S3, extract it with Veryfi and store the result."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="the receipt or invoice to process (pdf, jpg, png...)")
        parser.add_argument("--user-id", type=int, help="file the document under this user")
        parser.add_argument(
            "--enqueue",
            action="store_true",
            help="queue the run for the workers instead of running it here",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from orbit.cli import ProgressPrinter, console, escape
        from orbit.core.audit import Actor
        from runs.enqueueing import run_create
        from runs.foreground import ForegroundRunner

        out = console()
        try:
            metadata = run_metadata(
                options["path"], user_id=options["user_id"], max_bytes=conf.max_upload_bytes()
            )
            if options["enqueue"]:
                run = run_create(PIPELINE, metadata=metadata, actor=Actor.cli())
                copied = (
                    f" (copied from {escape(options['path'])} into ORBIT_DOCUMENTS_ROOT)"
                    if metadata["filePath"].startswith("uploads/")
                    else ""
                )
                out.print(
                    f"Queued run {run.id} for {escape(metadata['filePath'])}{copied}; a "
                    "worker (`orbit worker`) will process it."
                )
                return
            if options["verbosity"] < 2:  # -v 2 shows the lifecycle log lines
                logging.getLogger("runs").setLevel(logging.CRITICAL)
            result = ForegroundRunner(PIPELINE, on_event=ProgressPrinter(out)).execute(
                metadata=metadata
            )
        except OrbitError as exc:
            out.print(f"[red]{escape(str(exc))}[/red]")
            raise SystemExit(2) from None
        except KeyboardInterrupt:
            out.print(
                "[yellow]Interrupted: the run was handed back to the workers' queue.[/yellow]"
            )
            raise SystemExit(130) from None
        if not result.success:
            out.print(f"[red]Run {result.run_id} {result.status}:[/red] {escape(result.error)}")
            raise SystemExit(1)
        out.print(f"[green]Run {result.run_id} succeeded[/green] in {result.duration:.2f} s")
        print_summary(out, result.results.get("summary") or {})


def print_summary(out: Any, summary: dict[str, Any]) -> None:
    from rich.table import Table

    from orbit.cli import escape

    table = Table(title="Document", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    rows = [
        ("file", summary.get("file")),
        ("size", f"{summary['size']} bytes" if summary.get("size") is not None else None),
        ("vendor", summary.get("vendor")),
        (
            "total",
            " ".join(
                str(v) for v in (summary.get("total"), summary.get("currency")) if v is not None
            ),
        ),
        ("date", summary.get("date")),
        ("Veryfi id", summary.get("veryfiId")),
        (
            "document",
            f"/admin/services/veryfidocument/{summary['documentId']}/change/"
            if summary.get("documentId")
            else None,
        ),
        ("S3", summary.get("s3Url")),
    ]
    for name, value in rows:
        table.add_row(name, escape(str(value)) if value not in (None, "") else "—")
    for entry in summary.get("durations") or []:
        table.add_row(escape(str(entry["step"])), f"{entry['seconds']:.3f} s")
    out.print(table)
