"""Hearing announcements on PostgreSQL: LISTEN on a connection of its own.

`announce` (NOTIFY) carries the delay in milliseconds until the work is due (0: now), so
a listener can set a timer for a retry or a delayed run instead of polling for it. NOTIFY
inside a transaction is delivered at commit, so a worker never wakes for a run it cannot
see yet. LISTEN needs a session of its own: behind PgBouncer in transaction pooling, point
ORBIT_LISTEN_DATABASE_URL straight at PostgreSQL (docs/WORKER-DEPLOYMENT.md). Whether it
hears anything is checked when it connects (`probe`): a NOTIFY sent the way announcements
are sent must come back, or the worker polls instead of waiting for wake-ups that never come.
"""

from __future__ import annotations

import logging
import os
import select
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.db import connection

from orbit.core.conf import orbit_settings
from runs.store.records import PLAIN_PREFIX, Announcements

logger = logging.getLogger(__name__)

CHANNEL = "orbit_runs"
#: Announcements of runs no flow limit holds (`Announcements.plain`). A channel of its
#: own because the insert function writes the payload (runs/store/sql/functions.sql).
PLAIN_CHANNEL = "orbit_runs_plain"


class Listener:
    """A dedicated autocommit connection that LISTENs; `Wakeups` for the worker loop."""

    def __init__(self) -> None:
        self._conn: Any = None
        self._early: list[Any] = []  # announcements that arrived during the probe

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.closed

    def connect(self) -> None:
        """LISTEN on ORBIT_LISTEN_DATABASE_URL if set (PostgreSQL itself, when the main
        connection goes through a transaction-pooling PgBouncer), else as Django connects."""
        import psycopg

        url = orbit_settings.listen_database_url
        if url:
            self._conn = psycopg.connect(url, autocommit=True, connect_timeout=5)
        else:
            params = connection.get_connection_params()
            for key in ("cursor_factory", "context", "prepare_threshold"):
                params.pop(key, None)
            self._conn = psycopg.connect(autocommit=True, **params)
        self._conn.execute(f"LISTEN {CHANNEL}")
        self._conn.execute(f"LISTEN {PLAIN_CHANNEL}")

    def probe(self, send: Callable[[str], object], timeout: float) -> bool:
        """Whether a NOTIFY that `send(channel)` makes reaches this connection within
        `timeout` seconds. Through a transaction-pooling PgBouncer it does not: the LISTEN
        ran on a server connection that went back to the pool."""
        channel = f"orbit_probe_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self._conn.execute(f"LISTEN {channel}")
        send(channel)
        pgconn = self._conn.pgconn
        deadline = time.monotonic() + timeout
        heard = False
        while not heard and (left := deadline - time.monotonic()) > 0:
            select.select([self.fileno()], [], [], left)
            pgconn.consume_input()
            while (notify := pgconn.notifies()) is not None:
                if notify.relname.decode() == channel:
                    heard = True
                else:
                    self._early.append(notify)
        self._conn.execute(f"UNLISTEN {channel}")
        return heard

    def fileno(self) -> int:
        return int(self._conn.fileno())

    def drain(self) -> Announcements:
        """What was announced since the last call; raises when the connection broke."""
        pgconn = self._conn.pgconn
        pgconn.consume_input()
        if pgconn.status != 0:  # CONNECTION_OK
            raise ConnectionError("LISTEN connection lost")
        early, self._early = self._early, []
        return Announcements.parse(
            (PLAIN_PREFIX if channel == PLAIN_CHANNEL else "") + notify.extra.decode()
            for notify in [*early, *iter(pgconn.notifies, None)]
            if (channel := notify.relname.decode()) in (CHANNEL, PLAIN_CHANNEL)
        )

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # already broken; nothing to clean up
                logger.debug("closing a broken LISTEN connection", exc_info=True)
            self._conn = None
