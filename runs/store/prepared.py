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
from psycopg import pq

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
            # mapping and execute wrappers), over the connection's kept PreparedCursor
            return _rows(CursorWrapper(_kept_cursor(db), db), query, params)
        except DatabaseError as error:
            if getattr(error.__cause__, "sqlstate", None) not in POOLER_REFUSALS:
                raise
            _stop_preparing(db)
            if db.in_atomic_block:  # the transaction is lost: it fails as on any error
                raise
    with db.cursor() as cursor:  # nothing ran: the refused statement never executed
        return _rows(cursor, query, params)


def _kept_cursor(db: BaseDatabaseWrapper) -> PreparedCursor:
    """The connection's one PreparedCursor, made at its first statement and used for every
    statement after, never closed (it holds no server resource: its result is read whole).

    Why kept: a psycopg cursor made per statement sets up its adapters and looks up a
    dumper for each of the statement's parameters afresh; a single enqueue sends 24, and
    that setup was a sixth of its Python time (docs/PERFORMANCE.md, "One cursor per
    connection"). Kept on the connection's wrapper, so per thread as Django's connections
    are, and made again when Django has opened a new connection since."""
    kept: PreparedCursor | None = getattr(db, _KEPT, None)
    if kept is None or kept.connection is not db.connection:
        kept = PreparedCursor(db.connection)
        setattr(db, _KEPT, kept)
    return kept


#: The attribute of Django's connection wrapper that holds its kept PreparedCursor.
_KEPT = "_orbit_prepared_cursor"


def _rows(cursor: CursorWrapper, query: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """The statement's rows (psycopg's tuples), or none for a statement that returns no
    rows. Asked of the result's status, not of `description`, which builds a Column for
    each of the result's columns on every call."""
    cursor.execute(query, params)
    result = cursor.cursor.pgresult
    if result is None or result.status != pq.ExecStatus.TUPLES_OK:
        return []
    rows: list[tuple[Any, ...]] = cursor.fetchall()
    return rows


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
