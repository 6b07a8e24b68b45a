"""The run store: every database operation the engine performs, behind one seam.

`store()` answers the implementation for the database in use; it is the only place in
Orbit that asks which database that is. See runs/store/protocol.py for the operations.
"""

from __future__ import annotations

from functools import cache

from django.db import connection

from runs.store.protocol import RunStore, Wakeups

__all__ = ["RunStore", "Wakeups", "store"]


def store() -> RunStore:
    """The store for the default database."""
    return _store(connection.vendor == "postgresql")


@cache
def _store(postgres: bool) -> RunStore:
    if postgres:
        from runs.store.postgres import PostgresStore

        return PostgresStore()
    from runs.store.portable import PortableStore

    return PortableStore()
