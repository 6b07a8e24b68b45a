"""The store's PL/pgSQL functions (runs/store/sql/functions.sql) are what the migrations
created: a database migrated once keeps the function it was given, so a change to its
text must come with a migration that creates it again."""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
import re

import pytest
from django.db import connection

from orbit.core.models import AuditEvent
from runs import migrations
from runs.models import Run, Step
from runs.store.queries import SQL_DIR, parse


def source_sha256(name: str) -> str:
    """The function's text in functions.sql, its comment lines left out."""
    body = parse((SQL_DIR / "functions.sql").read_text())[name]
    code = "\n".join(line for line in body.splitlines() if not line.lstrip().startswith("--"))
    return hashlib.sha256(code.encode()).hexdigest()


def newest_declared() -> dict[str, str]:
    """Each function's SOURCE_SHA256 as the newest migration that declares it says."""
    found: dict[str, str] = {}
    for module in sorted(m.name for m in pkgutil.iter_modules(migrations.__path__)):
        declared = getattr(
            importlib.import_module(f"runs.migrations.{module}"), "SOURCE_SHA256", {}
        )
        found.update(declared)
    return found


def test_every_function_text_is_the_one_its_newest_migration_creates():
    created = [
        name
        for name in parse((SQL_DIR / "functions.sql").read_text())
        if name.startswith("create_")
    ]
    assert created == [
        "create_pipeline_as_read",
        "create_pipelines_held",
        "create_run_holding",
        "create_insert_runs",
        "create_insert_run",
        "create_claim",
        "create_commit",
        "create_due_under_limits",
        "create_refuse_orphans",
        "create_attempts_kept",
    ]
    declared = newest_declared()
    for name in created:
        assert declared.get(name) == source_sha256(name), (
            f"functions.sql {name} changed: add a migration that creates it again "
            f"and declares SOURCE_SHA256 = {{{name!r}: {source_sha256(name)!r}}}"
        )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("function", "volatility"),
    [
        ("orbit_insert_run", "v"),  # volatile: they write
        ("orbit_insert_runs", "v"),
        ("orbit_pipeline_as_read", "v"),  # it locks the row
        ("orbit_pipelines_held", "v"),  # so does this
        ("orbit_refuse_orphans", "v"),  # a trigger function
        ("orbit_run_holding", "s"),
        ("orbit_claim", "v"),
        ("orbit_commit", "v"),
        ("orbit_due_under_limits", "s"),  # stable: it only reads, in its caller's snapshot
    ],
)
def test_the_migrations_create_the_functions_on_postgresql_only(function, volatility):
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            pytest.skip("SQLite has no functions: the portable store uses the ORM")
        cursor.execute("SELECT prokind, provolatile FROM pg_proc WHERE proname = %s", [function])
        assert cursor.fetchall() == [("f", volatility)]  # one function of each name


@pytest.mark.parametrize(
    ("function", "table", "model", "generated"),
    [
        ("insert_run", "run", Run, set()),
        ("insert_run", "step", Step, {"id"}),
        ("insert_run", "audit", AuditEvent, {"id"}),
        ("insert_runs", "step", Step, set()),
        ("insert_runs", "audit", AuditEvent, set()),
    ],
)
def test_the_insert_functions_write_every_column_of_the_tables_they_name(
    function, table, model, generated
):
    """`orbit_insert_run` names each column it writes, and `orbit_insert_runs` each of a
    step's and an audit event's (functions.sql says why): a column added to one of those
    tables must be added to the INSERT, in a new migration, or a run enqueued alone, or a
    batch's steps and events, would get NULL, or no row, where the model has a default."""
    body = parse((SQL_DIR / "functions.sql").read_text())[f"create_{function}"]
    found = re.search(
        r"INSERT INTO " + re.escape("{" + table + "}") + r"(?: AS \w+)? \(([^)]*)\)", body
    )
    assert found, f"no INSERT INTO {{{table}}} with its columns named in create_{function}"
    written = {column.strip() for column in found.group(1).split(",")}
    columns = {field.column for field in model._meta.concrete_fields}
    assert written == columns - generated
