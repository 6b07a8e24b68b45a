"""An operator's flag on a pipeline row (pipelines/flags.py), as pausing (runs/pausing.py)
and archiving (pipelines/archiving.py) set and clear it: once, audited, logged."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from orbit.core.audit import Actor
from orbit.core.models import AuditEvent, AuditSource
from pipelines.archiving import pipeline_archive, pipeline_unarchive
from pipelines.models import Pipeline
from runs.pausing import pipeline_pause, pipeline_resume

pytestmark = pytest.mark.django_db

ALICE = Actor(source=AuditSource.CLI, name="alice")
BOB = Actor(source=AuditSource.CLI, name="bob")


@dataclass(frozen=True)
class Case:
    """One flag as its callers use it, and what each change leaves on the row and the trail."""

    set: Callable[..., bool]
    clear: Callable[..., bool]
    name: str  # the flag: its columns `<name>_at` and `<name>_by`
    undone: str  # its clearing's verb
    notes: dict[str, Any]  # the other columns it keeps while set
    set_changes: dict[str, Any]
    clear_changes: dict[str, Any]
    logger: str
    touches: bool  # whether a change moves the row's updated_at


CASES = [
    # a pause keeps its reason (the first: each actor gives their own), in the row and the trail
    pytest.param(
        Case(
            set=lambda row, *, actor: pipeline_pause(row, reason=f"{actor.name}'s", actor=actor),
            clear=pipeline_resume,
            name="paused",
            undone="resumed",
            notes={"pause_reason": "alice's"},
            set_changes={"paused": [False, True], "reason": "alice's"},
            clear_changes={"paused": [True, False], "paused_by": "alice", "reason": "alice's"},
            logger="runs.pausing",
            touches=False,
        ),
        id="pause",
    ),
    # an archive names the definition that is gone, and moves the row's updated_at
    pytest.param(
        Case(
            set=pipeline_archive,
            clear=pipeline_unarchive,
            name="archived",
            undone="unarchived",
            notes={},
            set_changes={"archived": [False, True], "definition": "scratch-gone"},
            clear_changes={"archived": [True, False], "archived_by": "alice"},
            logger="pipelines.archiving",
            touches=True,
        ),
        id="archive",
    ),
]


@pytest.fixture
def row() -> Pipeline:
    """A row whose definition is gone from code: one that may be paused and archived."""
    return Pipeline.objects.create(name="scratch", definition="scratch-gone")


def state(row: Pipeline, case: Case) -> tuple[bool, str, dict[str, Any]]:
    """The flag as the instance in hand shows it: set, by whom, and its notes."""
    notes = {column: getattr(row, column) for column in case.notes}
    return getattr(row, f"{case.name}_at") is not None, getattr(row, f"{case.name}_by"), notes


def events() -> list[tuple[str, str, dict[str, Any]]]:
    return list(AuditEvent.objects.order_by("id").values_list("action", "actor", "changes"))


@pytest.mark.parametrize("case", CASES)
def test_a_second_setting_keeps_the_first_and_records_nothing(row, case):
    assert case.set(row, actor=ALICE) is True
    assert case.set(row, actor=BOB) is False
    assert state(row, case) == (True, "alice", case.notes)  # the instance shows the row
    assert events() == [(f"pipeline.{case.name}", "alice", case.set_changes)]


@pytest.mark.parametrize("case", CASES)
def test_clearing_empties_the_flag_and_the_trail_keeps_who_had_set_it(row, case):
    case.set(row, actor=ALICE)
    assert case.clear(row, actor=BOB) is True
    assert case.clear(row, actor=BOB) is False
    assert state(row, case) == (False, "", dict.fromkeys(case.notes, ""))
    assert events()[1:] == [(f"pipeline.{case.undone}", "bob", case.clear_changes)]


@pytest.mark.parametrize("case", CASES)
def test_a_stale_instance_sets_nothing_the_stored_row_already_has(row, case):
    stale = Pipeline.objects.get(id=row.id)
    case.set(row, actor=ALICE)
    assert case.set(stale, actor=BOB) is False
    assert state(stale, case) == (True, "alice", case.notes)  # refreshed from the row
    assert len(events()) == 1


@pytest.mark.parametrize("case", CASES)
def test_each_change_is_logged_by_the_flags_owner(row, case, caplog):
    with caplog.at_level(logging.INFO, logger=case.logger):
        case.set(row, actor=ALICE)
        case.clear(row, actor=BOB)
    assert [(r.name, r.getMessage(), r.event) for r in caplog.records] == [
        (case.logger, f"Pipeline scratch {case.name} by alice", f"pipeline_{case.name}"),
        (case.logger, f"Pipeline scratch {case.undone} by bob", f"pipeline_{case.undone}"),
    ]


@pytest.mark.parametrize("case", CASES)
def test_only_an_archive_moves_the_rows_updated_at(row, case):
    Pipeline.objects.filter(id=row.id).update(updated_at="2026-01-01T00:00:00Z")
    row.refresh_from_db()
    before = row.updated_at
    case.set(row, actor=ALICE)
    assert (Pipeline.objects.get(id=row.id).updated_at != before) is case.touches
