"""Instant pickup on PostgreSQL: NOTIFY when work becomes claimable, LISTEN in idle workers.

The payload is the delay in milliseconds until the work is due (0: now), so a listener
can set a timer for a retry instead of polling for it. NOTIFY inside a transaction is
delivered at commit, so a worker never wakes for a run it cannot see yet.
"""

from __future__ import annotations

import logging
import select
from typing import Any

from django.db import connection

logger = logging.getLogger(__name__)

CHANNEL = "orbit_runs"


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def notify_runnable(delay_seconds: float = 0.0) -> None:
    """Tell listening workers that a run is (or will be, after the delay) claimable."""
    if not is_postgres():
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_notify(%s, %s)", [CHANNEL, str(int(max(delay_seconds, 0) * 1000))]
        )


class Listener:
    """A dedicated autocommit connection that LISTENs (PgBouncer: session pooling only)."""

    def __init__(self) -> None:
        self._conn: Any = None

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.closed

    def connect(self) -> None:
        import psycopg

        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        params.pop("prepare_threshold", None)
        self._conn = psycopg.connect(autocommit=True, **params)
        self._conn.execute(f"LISTEN {CHANNEL}")

    def fileno(self) -> int:
        return int(self._conn.fileno())

    def drain(self) -> list[float]:
        """Delays (seconds) announced since the last call; raises when the connection broke."""
        pgconn = self._conn.pgconn
        pgconn.consume_input()
        if pgconn.status != 0:  # CONNECTION_OK
            raise ConnectionError("LISTEN connection lost")
        delays = []
        while (notify := pgconn.notifies()) is not None:
            try:
                delays.append(int(notify.extra.decode() or 0) / 1000)
            except ValueError:
                delays.append(0.0)
        return delays

    def wait(self, timeout: float) -> list[float]:
        """Block up to `timeout` seconds for notifications (used outside the worker loop)."""
        ready, _, _ = select.select([self.fileno()], [], [], timeout)
        return self.drain() if ready else []

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # already broken; nothing to clean up
                logger.debug("closing a broken LISTEN connection", exc_info=True)
            self._conn = None
