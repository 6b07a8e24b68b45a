"""The `orbit` command line (also `python manage.py orbit ...` and `python -m orbit.cli`).

`orbit list` and `orbit run` live here; every other `orbit <name>` runs the management
command `<name>` with dashes as underscores (`orbit worker` is `runworker`), so commands
added by any app are reachable the same way. Orbit's own commands are in
management/commands/ beside this module (the app `orbit.cli`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

USAGE = """usage: orbit [--auto-recover] COMMAND [options]

Commands:
  list [--archived]         pipelines: definition, steps, schedule, enabled, last run
                            (exit 1 when a pipeline module fails to import); --archived:
                            the archived ones instead
  run NAME [--metadata JSON]  run a pipeline now in the foreground (exit 0 ok, 1 failed, 2 usage);
                            with --enqueue: queue it for the workers (as `orbit enqueue`)
  worker [options]          run a worker (same options as `manage.py runworker`)
  check-interrupted         runs whose worker died, and why they count as interrupted
  check-waiting             due runs waiting for a worker that defines their pipeline
  recover [--auto-resume]   report interrupted runs, or put them back in the queue
  resume RUN_ID             execute a pending or interrupted run now, in the foreground
  pause --queue Q | --pipeline NAME [--reason TEXT]
                            hold its queued runs (new ones are accepted and wait)
  resume --queue Q | --pipeline NAME  resume it: its runs are claimable at once
  queues                    queues: pending, due, running runs, and who paused them
  archive NAME              set aside a pipeline whose definition is gone from code
  unarchive NAME            bring an archived pipeline back
  enqueue NAME [--metadata JSON] [--queue Q] [--delay 30s | --at ISO] [--priority N]
        [--idempotency-key K] [--unique-key K]  queue a run for the workers (prints its id)
  rerun RUN_ID [--metadata JSON]  queue the run's pipeline again (its input, or an edited one)
  prune [--older-than 7d] [--dry-run]
                            delete finished runs and audit events past retention
  process-document PATH     run the document-processing pipeline for one file
  <command>                 any Django management command (migrate, createsuperuser, ...)

  --auto-recover            recover interrupted runs first, then run COMMAND
"""


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orbit.settings")
    project = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if project not in sys.path:
        sys.path.insert(0, project)
    import django

    django.setup()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    auto_recover = False
    if args and args[0] == "--auto-recover":
        auto_recover, args = True, args[1:]
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if args else 2
    setup_django()
    from orbit.core.audit import Actor, acting

    # What runs through code that names no actor (the executor behind `orbit run`) is
    # audited as the CLI's user.
    with acting(Actor.cli()):
        return _dispatch(args, auto_recover)


def _dispatch(args: list[str], auto_recover: bool) -> int:
    if auto_recover:
        from runs.recovery import recover_interrupted

        report = recover_interrupted(auto_resume=True)
        print(
            f"Recovered {len(report.recovered)} interrupted run(s); quarantined {len(report.quarantined)}."
        )
    command, rest = args[0], args[1:]
    if command == "list":
        return cmd_list(rest)
    if command == "run":
        return cmd_run(rest)
    return run_management_command(command, rest)


def run_management_command(command: str, rest: list[str]) -> int:
    from django.core.management import execute_from_command_line, get_commands

    name = {"worker": "runworker", "prune": "prune_runs"}.get(command, command.replace("-", "_"))
    if name not in get_commands():
        print(f"orbit: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    sys.argv = ["orbit", name, *rest]
    try:
        execute_from_command_line(sys.argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def site_url() -> str:
    """Where `make run` serves Orbit: on the PORT it was given (8000 by default)."""
    return f"http://127.0.0.1:{os.environ.get('PORT') or '8000'}"


def console() -> Any:
    from rich.console import Console

    # Piped output (scripts, CI logs) gets wide lines instead of 80-column wrapping.
    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)


def cmd_list(rest: list[str]) -> int:
    from rich.table import Table

    from pipelines.definition import registry
    from pipelines.models import Pipeline
    from pipelines.sync import sync_pipelines
    from runs.metrics import with_last_run

    if rest not in ([], ["--archived"]):
        print("usage: orbit list [--archived]", file=sys.stderr)
        return 2
    archived = rest == ["--archived"]
    sync_pipelines()
    out = console()
    table = Table(title="Archived pipelines" if archived else "Pipelines")
    for column in ("name", "definition", "steps", "schedule", "next run", "enabled", "last run"):
        table.add_column(column)
    rows = Pipeline.objects.archived() if archived else Pipeline.objects.unarchived()
    for row in with_last_run(rows):
        code = row.code
        steps = ", ".join(s.name for s in code.steps) if code else "[red]definition missing[/red]"
        table.add_row(
            _escape(row.name),
            _escape(row.definition),
            steps if not code else _escape(steps),
            _schedule(row),
            _next_fire(row),
            "yes" if row.enabled else "[yellow]no[/yellow]",
            getattr(row, "last_run_status", None) or "-",
        )
    out.print(table)
    hidden = 0 if archived else Pipeline.objects.archived().count()
    if hidden:
        out.print(
            f"{hidden} archived pipeline{'s' if hidden != 1 else ''} not shown: orbit list --archived"
        )
    for failure in registry.errors.values():
        out.print(
            f"[red]Pipeline module {_escape(failure.module)} failed to import[/red] "
            f"({_escape(failure.where)}): {_escape(failure.error)}"
        )
    return 1 if registry.errors else 0


def _schedule(row: Any) -> str:
    """The schedule in force and where it came from: `0 3 * * * (code)`, or an operator's
    value with what the code says beside it when they differ."""
    shown = _escape(row.schedule or "-")
    code = row.code_schedule
    if row.schedule_source == "code":
        return f"{shown} [dim](code)[/dim]"
    if code is not None and code != row.schedule:
        return f"{shown} [dim](operator; code says {_escape(code or 'none')})[/dim]"
    return f"{shown} [dim](operator)[/dim]"


def escape(text: object) -> str:
    """Text for the terminal: control characters written as escapes (so nothing stored can
    send escape codes to it), then Rich's markup escaped (so `[red]` is shown, not obeyed)."""
    from rich.markup import escape as escape_markup

    from orbit.core.text import printable

    return escape_markup(printable(str(text)))


_escape = escape


@contextmanager
def refusals(out: Any) -> Iterator[None]:
    """An OrbitError in the block ends the command as refused input: its message in red
    on `out`, exit status 2."""
    from orbit.core.exceptions import OrbitError

    try:
        yield
    except OrbitError as exc:
        out.print(f"[red]{escape(str(exc))}[/red]")
        raise SystemExit(2) from None


def metadata_option(text: str) -> Any:
    """--metadata parsed as JSON; InvalidMetadata (an OrbitError: exit 2) when it is not
    JSON or nests past the parser's recursion, which json.loads raises as RecursionError."""
    from orbit.core.limits import parse_json

    return parse_json(text, what="--metadata")


def _next_fire(row: Any) -> str:
    try:
        from runs.scheduler import next_fire_time
    except ImportError:
        return "-"
    try:
        when = next_fire_time(row)
    except Exception:
        return "[red]invalid schedule[/red]"
    return when.strftime("%Y-%m-%d %H:%M %Z") if when else "-"


def cmd_run(rest: list[str]) -> int:
    import argparse

    if "--enqueue" in rest:  # queue it for the workers instead: `orbit enqueue`'s options
        return run_management_command("enqueue", [a for a in rest if a != "--enqueue"])

    from orbit.core.exceptions import OrbitError
    from runs.foreground import ForegroundRunner

    parser = argparse.ArgumentParser(
        prog="orbit run", description="Run a pipeline in the foreground."
    )
    parser.add_argument("name")
    parser.add_argument("--metadata", default="{}", help="the run's input, a JSON object")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print the steps' log records as they are written, and lifecycle log lines",
    )
    try:
        options = parser.parse_args(rest)
    except SystemExit as exc:
        return 2 if exc.code else 0
    out = console()
    if not options.verbose:
        logging.getLogger("runs").setLevel(logging.CRITICAL)
    printer = ProgressPrinter(out, logs=options.verbose)
    try:
        metadata = metadata_option(options.metadata)
        result = ForegroundRunner(options.name, on_event=printer).execute(metadata=metadata)
    except OrbitError as exc:
        out.print(f"[red]{_escape(str(exc))}[/red]")
        return 2
    except KeyboardInterrupt:
        out.print("[yellow]Interrupted: the run was handed back to the workers' queue.[/yellow]")
        return 130
    if result.success:
        out.print(f"[green]Run {result.run_id} succeeded[/green] in {result.duration:.2f} s")
        out.print_json(json.dumps(result.results))
        return 0
    out.print(f"[red]Run {result.run_id} {result.status}:[/red] {_escape(result.error)}")
    return 1


class ProgressPrinter:
    """Prints executor events as they happen: steps, failed attempts, retry delays, and
    with `logs` each record a step logs (secrets masked, as every page shows them)."""

    def __init__(self, console: Any, *, logs: bool = False) -> None:
        self.console = console
        self.logs = logs

    def __call__(self, event: str, **data: Any) -> None:
        step = _escape(str(data.get("step", "")))
        if event == "step_started":
            self.console.print(f"[cyan]▶[/cyan] {step} [dim](attempt {data['attempt']})[/dim]")
        elif event == "log" and self.logs:
            self._log(step, data)
        elif event == "step_succeeded":
            self.console.print(f"[green]✔[/green] {step} [dim]{data['duration']:.3f} s[/dim]")
        elif event == "attempt_failed":
            from orbit.core.exceptions import error_text

            error = _escape(error_text(data.get("error_type", ""), data["error"]))
            self.console.print(
                f"[red]✖[/red] {step} attempt {data['attempt']} {data['outcome']}: {error}"
            )
        elif event == "retry_scheduled":
            self.console.print(f"[yellow]↻[/yellow] {step} retries in {data['delay']:.2f} s")

    def _log(self, step: str, data: dict[str, Any]) -> None:
        from orbit.core.redaction import redact, redact_text

        moment = data["time"].strftime("%H:%M:%S.%f")[:12]
        fields = redact(data.get("fields") or {})
        extra = f" [dim]{_escape(json.dumps(fields, default=repr))}[/dim]" if fields else ""
        self.console.print(
            f"  [dim]{moment}[/dim] {_escape(data['level']):<7} {step}: "
            f"{_escape(redact_text(data['message']))}{extra}"
        )
