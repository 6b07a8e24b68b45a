"""`python manage.py runworker`: parse and validate options, then run a Worker."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from typing import Any

from django.core.checks import Tags
from django.core.checks.registry import registry as check_registry
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from orbit.core.audit import Actor, acting
from orbit.core.conf import orbit_settings
from orbit.core.models import AuditSource
from pipelines.definition import DEFAULT_QUEUE
from pipelines.registry import ImportFailure


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be 1 or more")
    return number


def non_negative_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} must not be negative")
    return number


def broken_modules_message(failures: list[ImportFailure]) -> str:
    """Why the worker refuses to start: each module, the file and line, the error."""
    lines = [
        f"Pipeline module {f.module} failed to import ({f.where}): {f.error}" for f in failures
    ]
    return (
        "\n".join(lines)
        + "\nThe worker did not start: fix the module, or start it with --allow-broken-modules "
        "(ORBIT_ALLOW_BROKEN_MODULES=True) to run the pipelines that did load."
    )


class Command(BaseCommand):
    help = "Run a worker that claims and executes pending runs until SIGTERM/SIGINT."

    #: Set when this command is the process (`manage.py runworker`, `orbit worker`), not
    #: a `call_command` inside another program: only then may it end the process itself.
    owns_process = False

    @property
    def requires_system_checks(self) -> list[str]:  # type: ignore[override]
        """Every tagged system check but the URL configuration's. A worker serves no URL,
        and checking them imports the whole URLconf (the API and its schemas): a third of
        a worker's start (0.24 of 0.79 s), and memory every step process is forked with.
        The web process's `manage.py check` and `migrate` still run them."""
        return sorted(check_registry.tags_available() - {Tags.urls})

    def run_from_argv(self, argv: list[str]) -> None:
        """Django runs a command from the command line through here (`call_command` never
        does), so this is where the command learns the process is its own."""
        self.owns_process = True
        super().run_from_argv(argv)

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--concurrency",
            type=positive_int,
            default=None,
            help="Steps executed at once, each in its own child process (default: "
            "ORBIT_WORKER_CONCURRENCY, else 4 per CPU, at least 16, at most 64).",
        )
        parser.add_argument(
            "--grace",
            type=non_negative_float,
            default=30.0,
            help="Seconds running steps get to finish after SIGTERM (default 30).",
        )
        parser.add_argument(
            "--burst",
            action="store_true",
            help="Drain what is runnable (or due within a minute) and exit.",
        )
        parser.add_argument(
            "--max-runs",
            type=positive_int,
            default=None,
            help="Exit gracefully after this many runs.",
        )
        parser.add_argument(
            "--max-runs-per-child",
            type=positive_int,
            default=1000,
            help="Replace a child process after this many steps (default 1000).",
        )
        parser.add_argument(
            "--queue",
            dest="queues",
            action="append",
            default=None,
            help="Queue to serve; repeat for several (default: default).",
        )
        parser.add_argument(
            "--no-listen",
            action="store_true",
            help="Poll only, even on PostgreSQL (see ORBIT_LISTEN_DATABASE_URL for PgBouncer).",
        )
        parser.add_argument(
            "--no-schedules",
            action="store_true",
            help="Do not fire cron schedules from this worker.",
        )
        parser.add_argument(
            "--allow-broken-modules",
            action="store_true",
            help="Start even when a pipeline module fails to import, running the pipelines "
            "that did load (also ORBIT_ALLOW_BROKEN_MODULES=True).",
        )
        parser.add_argument(
            "--no-prune",
            action="store_true",
            help="Do not apply ORBIT_RETENTION_* from this worker (docs/OPERATIONS.md).",
        )
        parser.add_argument(
            "--reload",
            action="store_true",
            help="Restart the worker gracefully when Python files change (development).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["reload"]:
            from runs.worker.reloader import run_with_reloader

            raise SystemExit(run_with_reloader())
        from pipelines.definition import registry
        from runs.worker import WorkerLoop

        failures = registry.import_failures()
        allowed = options["allow_broken_modules"] or orbit_settings.allow_broken_modules
        if failures and not allowed:
            raise CommandError(broken_modules_message(failures))
        try:
            concurrency = options["concurrency"] or orbit_settings.worker_concurrency
            worker = WorkerLoop(
                concurrency=concurrency,
                queues=options["queues"] or [DEFAULT_QUEUE],
                grace=options["grace"],
                burst=options["burst"],
                max_runs=options["max_runs"],
                max_runs_per_child=options["max_runs_per_child"],
                listen=not options["no_listen"],
                schedules=not options["no_schedules"],
                prune=not options["no_prune"],
            )
        except (ValueError, ImproperlyConfigured) as exc:
            raise CommandError(str(exc)) from None
        worker.install_signal_handlers()
        # What the worker does on its own (resuming interrupted runs) is audited as it.
        name = f"worker {socket.gethostname()}:{os.getpid()}"
        with acting(Actor.system(AuditSource.WORKER, name)):
            code = worker.run()
        if self.owns_process:
            exit_now(code)


def exit_now(code: int) -> None:
    """End the worker process as soon as its loop has stopped.

    The loop has stopped its children, marked the worker stopped and committed all it
    will; what is left is interpreter teardown (garbage collecting every module, atexit
    hooks), which takes a second or more on a loaded host and delays whoever waits on the
    process (a deploy, a supervisor, the tests of a prompt stop). So: flush the log
    handlers and the standard streams, close the database connections cleanly, and exit.
    `atexit` hooks do not run: Orbit registers none, and one that must run at a worker's
    end belongs in the loop's cleanup. `call_command("runworker")` returns as before.
    """
    from django.db import connections

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    connections.close_all()
    os._exit(code)
