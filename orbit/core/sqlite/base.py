"""Django's SQLite backend, with write transactions taken in turn through a file lock.

SQLite has one writer at a time. A process that finds the write lock taken waits in
SQLite's busy handler, which sleeps and retries (1, 2, 5, 10, ... up to 100 ms a time):
with two busy worker processes, each transaction a few milliseconds long, most of the time
goes to sleeping past the moment the lock was freed, and two processes drain slower than
one. So each transaction (BEGIN IMMEDIATE: every atomic block writes) first takes an
exclusive `flock` on `<database>.orbit-lock`, which the kernel hands to the next waiter the
moment it is released, and lets it go at COMMIT or ROLLBACK. The busy timeout still covers
writers outside this (another program, a statement in autocommit): correctness never
rests on the file lock, only the speed of taking turns.
"""

from __future__ import annotations

import fcntl
import os
from typing import Any

from django.db.backends.sqlite3 import base


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._turn_fd: int | None = None
        self._holding_turn = False

    def _take_turn(self) -> None:
        if self.is_in_memory_db():
            return
        if self._turn_fd is None:
            path = f"{self.settings_dict['NAME']}.orbit-lock"
            self._turn_fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(self._turn_fd, fcntl.LOCK_EX)
        self._holding_turn = True

    def _end_turn(self) -> None:
        if self._holding_turn and self._turn_fd is not None:
            self._holding_turn = False
            fcntl.flock(self._turn_fd, fcntl.LOCK_UN)

    def _start_transaction_under_autocommit(self) -> None:
        self._take_turn()
        try:
            super()._start_transaction_under_autocommit()  # type: ignore[misc]
        except BaseException:
            self._end_turn()
            raise

    def _commit(self) -> Any:
        try:
            return super()._commit()  # type: ignore[misc]
        finally:
            self._end_turn()

    def _rollback(self) -> Any:
        try:
            return super()._rollback()  # type: ignore[misc]
        finally:
            self._end_turn()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._end_turn()
            if self._turn_fd is not None:
                os.close(self._turn_fd)
                self._turn_fd = None
