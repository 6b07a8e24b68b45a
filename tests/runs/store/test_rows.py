"""Rows the PostgreSQL store inserts are whole rows derived from the models."""

from __future__ import annotations

import json
import re

import pytest

from orbit.core.models import AuditEvent
from runs.models import Run, RunRollup, Step, StepAttempt, StepLog
from runs.store import queries, rows

MODELS = {
    "run": Run,
    "step": Step,
    "attempt": StepAttempt,
    "steplog": StepLog,
    "audit": AuditEvent,
    "rollup": RunRollup,
}


def named_sql() -> dict[str, str]:
    """Every named statement of the store: runs.sql's, and the functions' (functions.sql,
    created by migrations) that runs.sql calls."""
    found: dict[str, str] = {}
    for path in sorted(queries.SQL_DIR.glob("*.sql")):
        found.update({f"{path.name}:{k}": v for k, v in queries.parse(path.read_text()).items()})
    return found


@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS.keys())
def test_defaults_cover_every_column_but_the_key_and_the_stamped_ones(model):
    columns = {f.column for f in model._meta.concrete_fields}
    defaults = set(json.loads(rows.defaults_json(model)))
    assert defaults == columns - rows.stamped_columns(model) - {model._meta.pk.column}


def test_every_insert_sets_the_key_and_the_stamped_columns_itself():
    statements = named_sql()
    inserts = 0
    for name, body in statements.items():
        # a row is `(jsonb_populate_record(...)).*` or `LATERAL jsonb_populate_record(...) AS made`
        for table, rest in re.findall(
            r"INSERT INTO \{(\w+)\}(.*?)(?:\)\)\.\*|\) AS made\b)", body, re.S
        ):
            inserts += 1
            model = MODELS[table]
            needed = set(rows.stamped_columns(model))
            if model is not Run:  # run ids are made by the caller (time-ordered, runs/ids.py)
                needed.add(model._meta.pk.column)
            for column in needed:
                assert f"'{column}'," in rest, f"{name}: INSERT INTO {table} does not set {column}"
    # runs (functions.sql), attempts (commit, recovery), logs, rollups; the inserts that
    # name their columns (a batch's steps and events, a run alone) are held to every
    # column by tests/runs/store/test_functions.py
    assert inserts == 5


def test_a_statement_names_only_the_fixed_tables():
    for name, body in named_sql().items():
        assert set(re.findall(r"\{(\w+)\}", body)) <= set(queries.TABLES), name


def test_every_whole_row_is_built_once_not_once_per_column():
    """`SELECT (jsonb_populate_record(...)).*` runs the function, and the nextval() inside
    it, once per column: ten times the work, and ids burnt by the dozen. Each insert
    builds its row in a LATERAL join instead."""
    for name, body in named_sql().items():
        code = "\n".join(line.split("--")[0] for line in body.splitlines())
        assert ")).*" not in code, f"{name} builds a row once per column"
