"""The store's statements, prepared once per PostgreSQL connection.

Django's psycopg cursors bind parameters on the client: PostgreSQL parses and analyses
every statement it is sent afresh. For the call of `orbit_insert_run` that a single
`enqueue` makes, that was a quarter of the call's cost (docs/PERFORMANCE.md, "Prepared
once per connection"; a claim or commit of a batch shares its parse among many runs),
and the store's statements are few, named, and their text never changes, which is what
a server-prepared statement is for.

A pooler in transaction mode hands each transaction whichever server connection is free,
so a statement prepared on one may be missing on the next: PgBouncer before 1.21, or later
with `max_prepared_statements = 0`, answers "prepared statement ... does not exist". So
preparing follows ORBIT_PREPARED_STATEMENTS ("auto": not when server-side cursors are off,
as such deployments set them; orbit/core/conf.py `prepares_statements`), and a process that
meets that error anyway stops preparing, says so once, and sends the statement again
when nothing else was in its transaction (docs/WORKER-DEPLOYMENT.md).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import psycopg
from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper

logger = logging.getLogger(__name__)

#: What a pooler that cannot route prepared statements answers: a statement missing from
#: the server connection it was handed, or one of the same name prepared by another client.
POOLER_REFUSALS = frozenset({"26000", "42P05"})

#: Set once this process met POOLER_REFUSALS: its connections prepare nothing more.
_refused = False


class PreparedCursor(psycopg.Cursor[Any]):
    """psycopg's server-binding cursor, every statement prepared: Django's cursor wrapper
    passes no `prepare` argument through, and the connection's prepare_threshold
    (orbit/core/conf.py PREPARE_WHEN_ASKED) prepares nothing unasked."""

    def execute(
        self,
        query: Any,
        params: Any = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> PreparedCursor:
        super().execute(query, params, prepare=True, binary=binary)
        return self


def prepares(db: BaseDatabaseWrapper) -> bool:
    """Whether statements sent through `execute` on this connection are prepared: the
    settings asked for it (a prepare_threshold), no pooler refused them here, and no query
    log is kept (DEBUG, a test capturing queries), which shows each statement with its
    values as Django sends its own."""
    if _refused or db.queries_logged:
        return False
    db.ensure_connection()
    return getattr(db.connection, "prepare_threshold", None) is not None


def execute(
    db: BaseDatabaseWrapper, query: str, params: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """Run one statement, prepared when this connection prepares; its rows, if any.

    `db` is the connection itself (`connections[alias]`), not `django.db.connection`:
    every attribute read through that proxy is a lookup of the current thread's
    connections, and a statement reads a dozen (a fifth of a single enqueue's Python)."""
    if prepares(db):  # which opened the connection
        db.validate_thread_sharing()
        try:
            # a cursor as `connection.cursor()` gives one (Django's wrapper: its error
            # mapping and execute wrappers), over a PreparedCursor
            with CursorWrapper(PreparedCursor(db.connection), db) as cursor:
                return _rows(cursor, query, params)
        except DatabaseError as error:
            if getattr(error.__cause__, "sqlstate", None) not in POOLER_REFUSALS:
                raise
            _stop_preparing(db)
            if db.in_atomic_block:  # the transaction is lost: it fails as on any error
                raise
    with db.cursor() as cursor:  # nothing ran: the refused statement never executed
        return _rows(cursor, query, params)


def _rows(cursor: CursorWrapper, query: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    cursor.execute(query, params)
    return [tuple(row) for row in cursor.fetchall()] if cursor.description else []


def _stop_preparing(db: BaseDatabaseWrapper) -> None:
    global _refused
    if not _refused:
        logger.warning(
            "The database refused a prepared statement (is DATABASE_URL a PgBouncer in "
            "transaction pooling that cannot route them? Set ORBIT_PREPARED_STATEMENTS=false, "
            "or disable_server_side_cursors=true in the URL); preparing nothing more"
        )
    _refused = True
    db.connection.prepare_threshold = None
