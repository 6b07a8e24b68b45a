"""Hearing announcements on SQLite: a Unix datagram socket per worker, beside the file.

SQLite has no LISTEN/NOTIFY, and every process that writes to it runs on the host that
holds the file. So each waiting worker binds a datagram socket in a directory next to the
database (`<db>.orbit-wake/<pid>-<nonce>.sock`), and a transaction that makes work
claimable sends every socket there a datagram, after it commits (`on_commit`): a worker
never wakes for a run it cannot see yet. The datagram carries the same text as a NOTIFY
(`Announcements.delay_payload`, `cancel_payload`), so the worker loop has one wait path.

Sending never blocks and never raises into the caller: a full socket buffer means its
worker has announcements to read already, a socket nobody reads any more (its worker
died) is removed, and anything else is ignored. The workers' poll stays the safety net
(every ten `ORBIT_POLL_INTERVAL`s while a wake-up channel is open, as with LISTEN), so a
lost datagram delays a run, never loses it.
"""

from __future__ import annotations

import atexit
import errno
import logging
import os
import socket
import uuid
from functools import cache
from pathlib import Path

from django.db import connection, transaction

from runs.store.records import Announcements

logger = logging.getLogger(__name__)

SUFFIX = ".orbit-wake"
#: Longer than this, a path does not fit in `sockaddr_un` (108 bytes on Linux).
MAX_SOCKET_PATH = 100
#: Errors that mean nobody reads this socket any more: its worker is gone.
STALE = (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTSOCK)


def wake_directory() -> Path | None:
    """The directory of this database's wake-up sockets: next to its file; None when the
    database is not a file on this host (an in-memory SQLite, a server)."""
    name = connection.settings_dict.get("NAME")
    if not isinstance(name, str | os.PathLike) or not os.path.isfile(name):
        return None
    return Path(os.path.realpath(name) + SUFFIX)


def announce(payload: str) -> None:
    """Send `payload` to every worker waiting on this database, once the transaction
    commits (now, outside one)."""
    directory = wake_directory()
    if directory is not None:
        transaction.on_commit(lambda: send(directory, payload.encode()))


def send(directory: Path, payload: bytes) -> int:
    """Send `payload` to every socket in `directory`; how many got it."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0  # no worker ever waited here
    sender = _sender()
    delivered = 0
    for entry in entries:
        if not entry.name.endswith(".sock"):
            continue
        try:
            sender.sendto(payload, entry.path)
            delivered += 1
        except BlockingIOError:
            pass  # its buffer is full: it has announcements to read already
        except OSError as exc:
            if exc.errno in STALE:
                _unlink(entry.path)
            else:
                logger.debug("wake-up to %s not sent: %s", entry.path, exc)
    return delivered


@cache
def _sender() -> socket.socket:
    """One unbound, non-blocking datagram socket per process for every announcement."""
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sender.setblocking(False)
    atexit.register(sender.close)
    return sender


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass  # another sender removed it first


class DatagramWakeups:
    """A worker's own socket in the wake-up directory: `Wakeups` for the worker loop."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(exist_ok=True)
        self.path = str(directory / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.sock")
        if len(self.path) > MAX_SOCKET_PATH:
            raise OSError(f"wake-up socket path too long for a Unix socket: {self.path}")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._sock.bind(self.path)

    def fileno(self) -> int:
        return self._sock.fileno()

    def drain(self) -> Announcements:
        payloads: list[str] = []
        while True:
            try:
                data = self._sock.recv(512)
            except BlockingIOError:
                break
            payloads.append(data.decode(errors="replace"))
        return Announcements.parse(payloads)

    def close(self) -> None:
        self._sock.close()
        _unlink(self.path)
