"""A real PgBouncer in front of the local PostgreSQL, for tests and benchmarks.

Debian's `pgbouncer` package (installed by .ci/run; installed here too when missing and
we are root), started on a free port with its own configuration: trust authentication,
every database passed through to 127.0.0.1:5432, and the pool mode asked for
(transaction pooling, as production deployments run it).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

#: Where Debian installs it (not on a normal user's PATH).
BINARY = "/usr/sbin/pgbouncer"


def installed() -> str | None:
    """The pgbouncer binary, installed with apt-get first if missing and we may."""
    found = shutil.which("pgbouncer") or (BINARY if os.path.exists(BINARY) else None)
    if found or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return found
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "pgbouncer"]):
        if subprocess.run(command, env=env, capture_output=True, timeout=600).returncode:
            return None
    return shutil.which("pgbouncer") or (BINARY if os.path.exists(BINARY) else None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgBouncer:
    """`with PgBouncer() as bouncer:` a running PgBouncer; `bouncer.url(dbname)`.

    Its files live in a directory of its own under /tmp (removed at exit): when we are
    root it runs as the `postgres` user, who cannot read pytest's private temporary dirs.
    """

    def __init__(
        self,
        *,
        pool_mode: str = "transaction",
        pool_size: int = 10,
        max_clients: int = 1000,
        user: str = "postgres",
        upstream: tuple[str, int] = ("127.0.0.1", 5432),
    ) -> None:
        binary = installed()
        if binary is None:
            raise RuntimeError("pgbouncer is not installed (apt-get install pgbouncer)")
        self.binary = binary
        self.workdir = workdir = Path(tempfile.mkdtemp(prefix="orbit-pgbouncer-"))
        self.user = user
        self.port = free_port()
        self.pool_size = pool_size
        self.config = workdir / "pgbouncer.ini"
        self.log_path = workdir / "pgbouncer.log"
        (workdir / "userlist.txt").write_text(f'"{user}" ""\n')
        self.config.write_text(
            "[databases]\n"
            f"* = host={upstream[0]} port={upstream[1]}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {workdir / 'userlist.txt'}\n"
            f"admin_users = {user}\n"
            f"pool_mode = {pool_mode}\n"
            f"default_pool_size = {pool_size}\n"
            f"max_client_conn = {max_clients}\n"
            "ignore_startup_parameters = extra_float_digits\n"
            f"logfile = {self.log_path}\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, dbname: str, **query: str) -> str:
        """A DATABASE_URL through this PgBouncer."""
        extra = "&".join(f"{k}={v}" for k, v in query.items())
        return f"postgres://{self.user}@127.0.0.1:{self.port}/{dbname}" + (
            f"?{extra}" if extra else ""
        )

    def __enter__(self) -> PgBouncer:
        command = [self.binary, str(self.config)]
        if os.geteuid() == 0:  # it refuses to run as root: it drops to the database's user
            shutil.chown(self.workdir, "postgres")
            for path in self.workdir.iterdir():
                shutil.chown(path, "postgres")
            command[1:1] = ["-u", "postgres"]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=self.workdir
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return self
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"pgbouncer did not start: {self.log()}") from None
                time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # shut down now, closing every connection
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def show(self, what: str) -> list[dict[str, object]]:
        """The admin console's `SHOW <what>` (CLIENTS, SERVERS, POOLS) as dicts."""
        with psycopg.connect(self.url("pgbouncer"), autocommit=True) as conn:
            cursor = conn.cursor()
            cursor.execute(f"SHOW {what}")
            names = [c.name for c in cursor.description or []]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
