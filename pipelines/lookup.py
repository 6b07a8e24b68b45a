"""Pipeline rows by name, as enqueueing reads them: cached in each process.

Queueing a run needs its pipeline's row: its id, its definition, its default metadata and
whether it is enabled. Reading it on every enqueue cost a round trip of its own, a third
of a single enqueue's time. So each process keeps the rows it read, and never trusts the
copy with anything that matters: the insert itself checks, in the same statement, that the
row still says what the copy says (enabled, not archived, same name, definition and default metadata;
runs/store `insert_runs`, `PipelineCheck`) and writes nothing when it does not. The caller
then forgets the copy, reads the row again and lays the runs out anew, or
refuses them. A pipeline disabled, renamed, pointed at another definition or given other
default metadata by any process is therefore seen by the very next enqueue everywhere,
and a stale copy never creates a run.

Only enabled, unarchived rows whose definition exists in code are kept: a refusal is always decided
on a fresh read, never on a copy. Syncing the pipelines forgets every copy.
"""

from __future__ import annotations

from django.db.models.base import ModelState

from pipelines.models import Pipeline

_rows: dict[str, Pipeline] = {}


def cached(name: str) -> Pipeline | None:
    """A copy of the row last read for `name`, if it was kept (the caller may change it)."""
    row = _rows.get(name)
    return None if row is None else _copy(row)


def keep(row: Pipeline) -> Pipeline:
    """Remember `row` under its name while it may start runs; returns it."""
    if row.enabled and row.archived_at is None and row.code is not None:
        _rows[row.name] = _copy(row)
    else:
        _rows.pop(row.name, None)
    return row


def forget(name: str | None = None) -> None:
    """Drop the copy of `name` (every copy when None)."""
    if name is None:
        _rows.clear()
    else:
        _rows.pop(name, None)


def _copy(row: Pipeline) -> Pipeline:
    """A copy of a row read from the database, sharing no state with it: `copy.copy`
    goes through pickling's protocol, a tenth of an enqueue's own Python time. Kept rows
    hold no related objects, so the copy's state starts empty, as a fresh read's does."""
    twin = Pipeline.__new__(Pipeline)
    twin.__dict__.update(row.__dict__)
    twin._state = ModelState()
    twin._state.db, twin._state.adding = row._state.db, row._state.adding
    return twin
