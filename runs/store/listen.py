"""Hearing announcements on PostgreSQL: LISTEN on a connection of its own.

`announce` (NOTIFY) carries the delay in milliseconds until the work is due (0: now), so
a listener can set a timer for a retry or a delayed run instead of polling for it. NOTIFY
inside a transaction is delivered at commit, so a worker never wakes for a run it cannot
see yet. LISTEN needs a session of its own: behind PgBouncer in transaction pooling, point
ORBIT_LISTEN_DATABASE_URL straight at PostgreSQL (docs/WORKER-DEPLOYMENT.md).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.db import connection

from runs.store.records import Announcements

logger = logging.getLogger(__name__)

CHANNEL = "orbit_runs"
#: A payload that starts with this names a cancelled run rather than a delay.
CANCEL_PREFIX = "cancel:"


class Listener:
    """A dedicated autocommit connection that LISTENs; `Wakeups` for the worker loop."""

    def __init__(self) -> None:
        self._conn: Any = None

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.closed

    def connect(self) -> None:
        import psycopg

        params = connection.get_connection_params()
        for key in ("cursor_factory", "context", "prepare_threshold"):
            params.pop(key, None)
        self._conn = psycopg.connect(autocommit=True, **params)
        self._conn.execute(f"LISTEN {CHANNEL}")

    def fileno(self) -> int:
        return int(self._conn.fileno())

    def drain(self) -> Announcements:
        """What was announced since the last call; raises when the connection broke."""
        pgconn = self._conn.pgconn
        pgconn.consume_input()
        if pgconn.status != 0:  # CONNECTION_OK
            raise ConnectionError("LISTEN connection lost")
        delays: list[float] = []
        cancelled: list[uuid.UUID] = []
        while (notify := pgconn.notifies()) is not None:
            payload = notify.extra.decode()
            try:
                if payload.startswith(CANCEL_PREFIX):
                    cancelled.append(uuid.UUID(payload.removeprefix(CANCEL_PREFIX)))
                else:
                    delays.append(int(payload or 0) / 1000)
            except ValueError:
                delays.append(0.0)  # unreadable: look for work now, nothing is lost by it
        return Announcements(tuple(delays), tuple(cancelled))

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # already broken; nothing to clean up
                logger.debug("closing a broken LISTEN connection", exc_info=True)
            self._conn = None
