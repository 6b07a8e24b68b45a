"""The named SQL of the PostgreSQL store, loaded once from runs/store/sql/*.sql.

A statement starts at a `-- name: <name>` line and runs to the next one. The only text
put into a statement is the quoted table names of a fixed list of models, so what runs
is what the file says.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from django.db import connection, migrations

from orbit.core.models import AuditEvent
from pipelines.models import Pipeline
from runs.models import (
    QueuePause,
    RateWindow,
    Run,
    RunRollup,
    Step,
    StepAttempt,
    StepLog,
    WebhookDelivery,
)

SQL_DIR = Path(__file__).resolve().parent / "sql"
_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)

#: The identifiers a statement may name: {run}, {step}, ...
TABLES = {
    "run": Run,
    "step": Step,
    "attempt": StepAttempt,
    "steplog": StepLog,
    "pipeline": Pipeline,
    "audit": AuditEvent,
    "rollup": RunRollup,
    "queuepause": QueuePause,
    "delivery": WebhookDelivery,
    "ratewindow": RateWindow,
}


def parse(text: str) -> dict[str, str]:
    """Statements by name; the comments before the first name are the file's preamble."""
    parts = _NAME.split(text)
    statements: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in statements:
            raise ValueError(f"SQL statement {name!r} is defined twice")
        statements[name] = body.strip()
    return statements


@cache
def statements(filename: str = "runs.sql") -> dict[str, str]:
    """The file's statements with the table names filled in, as they are sent."""
    names = {key: connection.ops.quote_name(model._meta.db_table) for key, model in TABLES.items()}
    raw = parse((SQL_DIR / filename).read_text())
    return {name: sendable(name, body.format(**names)) for name, body in raw.items()}


def sendable(name: str, body: str) -> str:
    """`body` without its comment lines, under one naming it (so pg_stat_activity and the
    logs still say which statement runs). psycopg keeps a statement's parsed form only
    up to 4,096 characters (MAX_CACHED_STATEMENT_LENGTH); the comments pushed the
    longest statements past it, to be parsed again on every call."""
    kept = [line for line in body.splitlines() if not line.lstrip().startswith("--")]
    return "\n".join([f"-- orbit: {name}", *kept])


def sql(name: str, filename: str = "runs.sql") -> str:
    return statements(filename)[name]


def functions_migration(
    tables: Mapping[str, tuple[str, str]],
    names: Sequence[str],
    *,
    drop_first: Sequence[str] = (),
    reversible: bool = True,
) -> migrations.RunPython:
    """The migration operation that creates the store's PostgreSQL functions `names`
    (functions.sql `create_<name>`; backwards, `drop_<name>`), their text read from the
    file with `tables` ({key}: (app label, model)) named as the migration's models name
    them. `drop_first`: statements run before, for a function whose parameters changed.
    SQLite has no functions: there the operation does nothing."""

    def text(apps: Any, schema_editor: Any, name: str) -> str:
        names_ = {
            key: schema_editor.quote_name(apps.get_model(*model)._meta.db_table)
            for key, model in tables.items()
        }
        return parse((SQL_DIR / "functions.sql").read_text())[name].format(**names_)

    def create(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            for statement in drop_first:
                schema_editor.execute(statement, params=None)
            for name in names:
                schema_editor.execute(text(apps, schema_editor, f"create_{name}"), params=None)

    def drop(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            for name in names:
                schema_editor.execute(text(apps, schema_editor, f"drop_{name}"), params=None)

    return migrations.RunPython(
        create, drop if reversible else migrations.RunPython.noop, elidable=False
    )
