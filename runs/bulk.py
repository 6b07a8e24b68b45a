"""Operator actions over several runs or pipelines, each ending in one sentence saying what
happened ("3 runs queued for retry; 1 skipped because it is still running").

The admin's actions and the dashboard's buttons both call these, so they behave and read
the same; each row goes through runs.lifecycle / pipelines.lifecycle, which hold the rules
and record each change in the audit trail for `actor`.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from orbit.core.audit import Actor
from orbit.core.exceptions import OrbitError
from orbit.core.limits import parse_json, validate_metadata
from pipelines.archiving import pipeline_archive, pipeline_unarchive
from pipelines.lifecycle import pipeline_set_enabled
from pipelines.models import Pipeline
from runs.enqueueing import run_create
from runs.lifecycle import run_cancel, run_retry
from runs.models import Run, RunStatus, Worker
from runs.pausing import pipeline_pause, pipeline_resume
from runs.recovery import run_resume, worker_forget
from runs.store import store
from runs.uploads import run_create_with_upload

logger = logging.getLogger(__name__)

#: The most runs one action may touch: each is its own transaction.
MAX_RUNS_PER_ACTION = 1000


@dataclass
class ActionReport:
    """What an action did: how many rows it changed, and why it skipped the others."""

    done: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    noun: str = "run"
    verb: str = ""

    @property
    def ok(self) -> bool:
        return self.done > 0 or not self.skipped

    def message(self) -> str:
        parts = [f"{_count(self.done, self.noun)} {self.verb}"]
        for reason, n in sorted(self.skipped.items(), key=lambda item: (-item[1], item[0])):
            parts.append(f"{n} skipped because {_agree(reason, n)}")
        return "; ".join(parts)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _agree(reason: str, n: int) -> str:
    """'it is still running' reads 'they are still running' for several rows."""
    if n == 1:
        return reason
    return (
        reason.replace("it is ", "they are ")
        .replace("it was ", "they were ")
        .replace("it has ", "they have ")
        .replace("its ", "their ")
    )


def _each_run(
    runs: Iterable[Run], report: ActionReport, act: Callable[[Run], Any], why: Callable[[Run], str]
) -> ActionReport:
    for run in runs:
        try:
            act(run)
        except OrbitError:
            run.refresh_from_db()
            report.skipped[why(run)] += 1
        else:
            report.done += 1
    return report


def forget_workers(workers: Iterable[Worker], *, actor: Actor | None = None) -> ActionReport:
    """Take dead (or stopped) workers off the lists; live ones are skipped."""
    report = ActionReport(noun="worker", verb="forgotten")
    for worker in workers:
        try:
            worker_forget(worker.id, actor=actor)
        except OrbitError:
            report.skipped["it is alive"] += 1
        else:
            report.done += 1
    return report


def retry_runs(runs: Iterable[Run], *, actor: Actor | None = None) -> ActionReport:
    """Queue failed and cancelled runs again at their first unfinished step."""
    return _each_run(
        runs,
        ActionReport(verb="queued for retry"),
        lambda run: run_retry(run.id, actor=actor),
        _why_not_retry,
    )


def cancel_runs(runs: Iterable[Run], *, actor: Actor | None = None) -> ActionReport:
    """Cancel pending and running runs (a running step is stopped at its next lease renewal)."""
    return _each_run(
        runs,
        ActionReport(verb="cancelled"),
        lambda run: run_cancel(run.id, actor=actor),
        _why_not_cancel,
    )


def resume_runs(runs: Iterable[Run], *, actor: Actor | None = None) -> ActionReport:
    """Put interrupted runs (lease expired: their worker died) back in the queue now."""
    return _each_run(
        runs,
        ActionReport(verb="queued to resume"),
        lambda run: run_resume(run.id, actor=actor),
        _why_not_resume,
    )


def _why_not_retry(run: Run) -> str:
    if run.status == RunStatus.SUCCEEDED:
        return "it has already succeeded"
    if run.status == RunStatus.RUNNING:
        return "it is still running"
    return "it is still pending"


def _why_not_cancel(run: Run) -> str:
    return f"it has already {_finished_verb(run.status)}"


def _why_not_resume(run: Run) -> str:
    if run.status == RunStatus.RUNNING:
        return "its worker is alive (its lease has not expired)"
    if run.status == RunStatus.PENDING:
        return "it is already waiting in the queue"
    return f"it has already {_finished_verb(run.status)}"


def _finished_verb(status: str) -> str:
    return {"succeeded": "succeeded", "failed": "failed", "cancelled": "been cancelled"}.get(
        status, status
    )


def _each_pipeline(
    pipelines: Iterable[Pipeline],
    report: ActionReport,
    change: Callable[[Pipeline], bool],
    unchanged: str,
    refused: str | None = None,
) -> ActionReport:
    """Apply an idempotent change to each row: done where it changed the row, skipped
    with `unchanged` where there was nothing to change, and with `refused` (if given)
    where the change raised OrbitError; without `refused` the error propagates."""
    for row in pipelines:
        try:
            changed = change(row)
        except OrbitError:
            if refused is None:
                raise
            report.skipped[refused] += 1
            continue
        if changed:
            report.done += 1
        else:
            report.skipped[unchanged] += 1
    return report


def set_pipelines_enabled(
    pipelines: Iterable[Pipeline], enabled: bool, *, actor: Actor | None = None
) -> ActionReport:
    """Enable or disable pipelines; enabling resumes a schedule from its next slot."""
    state = "enabled" if enabled else "disabled"
    return _each_pipeline(
        pipelines,
        ActionReport(noun="pipeline", verb=state),
        lambda row: pipeline_set_enabled(row, enabled, actor=actor),
        f"it was already {state}",
    )


def pause_pipelines(
    pipelines: Iterable[Pipeline], *, reason: str = "", actor: Actor | None = None
) -> ActionReport:
    """Pause pipelines: their queued runs wait; one already paused keeps its first pause."""
    return _each_pipeline(
        pipelines,
        ActionReport(noun="pipeline", verb="paused"),
        lambda row: pipeline_pause(row, reason=reason, actor=actor),
        "it was already paused",
    )


def resume_pipelines(pipelines: Iterable[Pipeline], *, actor: Actor | None = None) -> ActionReport:
    """Resume paused pipelines: their queued runs are claimable at once."""
    return _each_pipeline(
        pipelines,
        ActionReport(noun="pipeline", verb="resumed"),
        lambda row: pipeline_resume(row, actor=actor),
        "it was not paused",
    )


def archive_pipelines(pipelines: Iterable[Pipeline], *, actor: Actor | None = None) -> ActionReport:
    """Archive pipelines whose definition is gone from code; one still in code is skipped
    with the reason (pipelines/archiving.py)."""
    return _each_pipeline(
        pipelines,
        ActionReport(noun="pipeline", verb="archived"),
        lambda row: pipeline_archive(row, actor=actor),
        "it was already archived",
        refused="its definition is still in code (disable it instead)",
    )


def unarchive_pipelines(
    pipelines: Iterable[Pipeline], *, actor: Actor | None = None
) -> ActionReport:
    """Bring archived pipelines back; idle workers are woken for their queued runs."""
    report = _each_pipeline(
        pipelines,
        ActionReport(noun="pipeline", verb="unarchived"),
        lambda row: pipeline_unarchive(row, actor=actor),
        "it was not archived",
    )
    if report.done:
        store().announce()  # their queued runs may be claimable again
    return report


def parse_metadata(text: str) -> dict[str, Any]:
    """Metadata typed into a form: empty means `{}`; otherwise a JSON object, checked in full."""
    text = (text or "").strip()
    if not text:
        return {}
    return validate_metadata(parse_json(text, what="Metadata"))


@dataclass
class RunNowReport(ActionReport):
    created: list[Run] = field(default_factory=list)


def run_now(
    pipelines: Iterable[Pipeline],
    metadata: dict[str, Any],
    *,
    queue: str | None = None,
    delay: float | timedelta | None = None,
    actor: Actor | None = None,
) -> RunNowReport:
    """Queue one run of each pipeline with `metadata` (merged over its default metadata),
    on `queue` (None: each definition's) after `delay`."""
    report = RunNowReport(verb="queued")
    for row in pipelines:
        if row.is_archived:
            report.skipped["it is archived"] += 1
            continue
        if not row.enabled:
            report.skipped["it is disabled"] += 1
            continue
        if row.code is None:
            report.skipped["its definition is no longer in code"] += 1
            continue
        try:
            report.created.append(
                run_create(row, metadata=metadata, queue=queue, delay=delay, actor=actor)
            )
        except OrbitError as exc:
            # Per row: the metadata merged over this pipeline's defaults may be too large.
            report.skipped[f"it refused the run: {exc}"] += 1
        else:
            report.done += 1
    return report


def run_now_with_upload(
    pipeline: Pipeline,
    upload: Any,
    metadata: dict[str, Any],
    *,
    queue: str | None = None,
    delay: float | timedelta | None = None,
    actor: Actor | None = None,
) -> RunNowReport:
    """Queue one run of `pipeline` with an uploaded file, stored in the documents folder
    and given to the run under the pipeline's upload field (runs.uploads)."""
    report = RunNowReport(verb="queued")
    if pipeline.is_archived:
        report.skipped["it is archived"] += 1
        return report
    if not pipeline.enabled:
        report.skipped["it is disabled"] += 1
        return report
    name = str(getattr(upload, "name", "") or "document")
    report.created.append(
        run_create_with_upload(
            pipeline,
            upload,
            file_name=name,
            metadata=metadata,
            queue=queue,
            delay=delay,
            actor=actor,
        )
    )
    report.done += 1
    return report


def as_run_ids(values: Iterable[str]) -> list[uuid.UUID]:
    """The valid UUIDs among `values`, in order; the rest are ignored."""
    ids = []
    for value in values:
        try:
            ids.append(uuid.UUID(str(value)))
        except ValueError:
            continue
    return ids
