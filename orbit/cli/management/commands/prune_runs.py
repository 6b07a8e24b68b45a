"""`orbit prune` (`manage.py prune_runs`): delete finished runs and audit events past retention."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from orbit.core.clock import db_now
from orbit.core.conf import format_age, parse_age
from runs.retention import Policy, Report, preview, prune
from runs.store.rollups import OUTCOMES

#: Print a progress line every this many batches.
PROGRESS_EVERY = 20


class Command(BaseCommand):
    help = (
        "Delete finished runs (with their steps, attempts and logs) and audit events older "
        "than the retention; without an age option, as ORBIT_RETENTION_* says. Pending and "
        "running runs are never pruned. Charts keep their figures (hourly rollups)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--older-than",
            metavar="AGE",
            help="Prune runs of every finished status that finished longer ago than AGE "
            "(7d, 12h, 2w, 90m).",
        )
        for status in OUTCOMES:
            parser.add_argument(
                f"--{status}",
                metavar="AGE",
                help=f"Keep {status} runs for AGE ('never': keep them all).",
            )
        parser.add_argument(
            "--audit", metavar="AGE", help="Keep audit events for AGE ('never': keep them all)."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Print what would go; delete nothing."
        )
        parser.add_argument(
            "--batch",
            type=int,
            default=None,
            help="Rows per transaction (default ORBIT_RETENTION_BATCH).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            policy = self._policy(options)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc), returncode=2) from None  # bad input, as for usage
        if options["batch"] is not None and options["batch"] < 1:
            raise CommandError("--batch must be at least 1")
        if not policy.prunes_anything:
            self.stdout.write("Nothing to prune: every kind of row is kept for ever.")
            return
        now = db_now()
        if options["dry_run"]:
            self._preview(policy, now)
            return
        report = prune(policy, limit=options["batch"], now=now, on_batch=self._progress)
        self.stdout.write(_summary(report))

    def _policy(self, options: dict[str, Any]) -> Policy:
        named = {kind: options[kind] for kind in (*OUTCOMES, "audit") if options[kind] is not None}
        if options["older_than"] is None and not named:
            return Policy.from_settings()
        policy = Policy()
        if options["older_than"] is not None:
            policy = policy.older_than(_older_than(options["older_than"]))
        ages = {kind: _age(f"--{kind}", value, allow_never=True) for kind, value in named.items()}
        return replace(policy, **ages)

    def _preview(self, policy: Policy, now: datetime) -> None:
        found = preview(policy, now)
        self.stdout.write(
            f"Would prune {found.total_runs:,} run(s), with their steps, attempts and logs:"
        )
        for status in OUTCOMES:
            if status in found.run_cutoffs:
                self.stdout.write(
                    f"  {status:<10} {found.runs[status]:>10,}  finished before "
                    f"{_moment(found.run_cutoffs[status])} ({_age_text(getattr(policy, status))})"
                )
            else:
                self.stdout.write(f"  {status:<10} {'kept':>10}")
        if found.audit_cutoff is not None:
            self.stdout.write(
                f"Would prune {found.audit:,} audit event(s) recorded before "
                f"{_moment(found.audit_cutoff)} ({_age_text(policy.audit)})."
            )
        else:
            self.stdout.write("Audit events are kept.")
        self.stdout.write("Nothing was deleted (--dry-run).")

    def _progress(self, report: Report) -> None:
        if report.batches % PROGRESS_EVERY == 0:
            self.stderr.write(
                f"  ... {report.total_runs:,} run(s), {report.audit:,} audit event(s) so far"
            )


def _age(option: str, value: str, *, allow_never: bool = False) -> timedelta | None:
    age = parse_age(option, value)
    if age is None and not allow_never:
        raise ImproperlyConfigured(f"{option} needs an age such as 7d or 12h, not {value!r}")
    return age


def _older_than(value: str) -> timedelta:
    age = _age("--older-than", value)
    assert age is not None
    return age


def _summary(report: Report) -> str:
    by_status = ", ".join(f"{n:,} {status}" for status, n in sorted(report.runs.items()))
    runs = f"{report.total_runs:,} run(s)" + (f" ({by_status})" if by_status else "")
    return (
        f"Pruned {runs} with {report.attempts:,} attempt(s), and {report.audit:,} audit "
        f"event(s), in {report.batches} batch(es). "
        "Their figures stay in the hourly rollups."
        if report.batches
        else "Nothing to prune."
    )


def _moment(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S} UTC" if at.utcoffset() == timedelta(0) else at.isoformat()


def _age_text(age: timedelta | None) -> str:
    return "kept" if age is None else format_age(age)
