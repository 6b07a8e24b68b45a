"""The store's PL/pgSQL functions (runs/store/sql/functions.sql) are what the migrations
created: a database migrated once keeps the function it was given, so a change to its
text must come with a migration that creates it again."""

from __future__ import annotations

import hashlib
import importlib
import pkgutil

import pytest
from django.db import connection

from runs import migrations
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
        "create_insert_runs",
        "create_claim",
        "create_commit",
        "create_due_under_limits",
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
        ("orbit_insert_runs", "v"),  # volatile: they write
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
