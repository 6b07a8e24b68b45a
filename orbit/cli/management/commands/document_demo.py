"""`orbit document-demo` (`make demo`): process the sample receipt through local
stand-ins for S3 and Veryfi, so the whole pipeline can be watched without accounts."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandParser

from orbit.cli import site_url
from orbit.cli.management.commands.process_document import PIPELINE, print_summary
from orbit.core.exceptions import OrbitError
from services.demo import SAMPLE_RECEIPT, local_standins
from services.documents import run_metadata


class Command(BaseCommand):
    help = "Process the sample receipt through local S3 (moto) and Veryfi stand-ins."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "path", nargs="?", default=str(SAMPLE_RECEIPT), help="a document (default: the sample)"
        )
        parser.add_argument(
            "--with-failures",
            action="store_true",
            help="have Veryfi rate-limit once and fail three times, to watch the retries",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from orbit.cli import ProgressPrinter, console, escape
        from runs.foreground import ForegroundRunner
        from tests.veryfi_standin import Fail

        out = console()
        if options["verbosity"] < 2:
            logging.getLogger("runs").setLevel(logging.CRITICAL)
        try:
            with local_standins() as standins:
                out.print(f"S3 stand-in (moto):  {standins.s3_endpoint}  bucket {standins.bucket}")
                out.print(f"Veryfi stand-in:     {standins.veryfi_base_url}")
                out.print(f"Processing {escape(options['path'])}\n")
                if options["with_failures"]:
                    standins.veryfi.script(
                        Fail(429, retry_after=1), Fail(500), Fail(500), Fail(500)
                    )
                metadata = run_metadata(options["path"], max_bytes=20 * 1024 * 1024)
                result = ForegroundRunner(PIPELINE, on_event=ProgressPrinter(out)).execute(
                    metadata=metadata
                )
        except (OrbitError, ImproperlyConfigured) as exc:
            out.print(f"[red]{escape(str(exc))}[/red]")
            raise SystemExit(2) from None
        if not result.success:
            out.print(f"[red]Run {result.run_id} {result.status}:[/red] {escape(result.error)}")
            raise SystemExit(1)
        out.print(f"\n[green]Run {result.run_id} succeeded[/green] in {result.duration:.2f} s")
        print_summary(out, result.results.get("summary") or {})
        out.print(
            f"\nSee it in the admin (`make run`, then {site_url()}/admin/): the run, "
            "its steps and logs, and the Veryfi document. Real services: fill in .env and "
            "run `orbit process-document PATH`."
        )
