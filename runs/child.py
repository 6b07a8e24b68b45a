"""Steps run in supervised child processes, so a timeout can really stop one and a step
that crashes its process (segfault, `os._exit`, out of memory) cannot take the caller down.

The child only runs step code; it never writes Orbit's tables. It sends log records and
a final `AttemptReport` back over a pipe; the supervisor commits them (fenced).
"""

from __future__ import annotations

import ctypes
import gc
import json
import logging
import multiprocessing
import os
import pickle
import signal
import threading
import time
import traceback as tb
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

from django.db import DatabaseError, close_old_connections, connections

from orbit.core import tracing
from orbit.core.conf import orbit_settings
from orbit.core.exceptions import InvalidResult
from orbit.core.logs import TraceIds, as_json_field, record_fields
from pipelines.context import StepContext, StepResult
from runs import attempts
from runs.attempts import AttemptReport, StepTask

logger = logging.getLogger(__name__)

_FORK = multiprocessing.get_context("fork")
#: Whether this process has frozen what it had loaded (see StepProcess). A flag, not
#: `gc.get_freeze_count()`: that walks every frozen object, about 10 ms for a worker's
#: 100,000, paid by the loop at each child it starts or recycles.
_frozen = False


class StepProcess:
    """A forked child that runs the step attempts it is sent, one at a time."""

    def __init__(self) -> None:
        _close_connections()
        parent_end, child_end = _FORK.Pipe(duplex=True)
        # What the worker had loaded when its first child forked (Django, the pipelines)
        # stays out of the children's garbage collector, so their collections do not
        # write to (and copy) every shared page. Once: freezing again would also pin any
        # garbage the worker made since.
        global _frozen
        if not _frozen:
            gc.collect()
            gc.freeze()
            _frozen = True
        self.process = _FORK.Process(
            target=_child_main, args=(child_end, parent_end, os.getpid()), name="orbit-step"
        )
        self.process.start()
        child_end.close()
        self.conn: Connection = parent_end
        self.tasks_run = 0

    @property
    def pid(self) -> int:
        return int(self.process.pid or 0)

    @property
    def sentinel(self) -> int:
        return int(self.process.sentinel)

    def is_alive(self) -> bool:
        return self.process.is_alive()

    def submit(self, task: StepTask) -> None:
        self.tasks_run += 1
        # pickle's own dumps: `Connection.send` builds a ForkingPickler (for handles and
        # sockets, which a task never holds) per message. The child's `recv` reads either.
        self.conn.send_bytes(pickle.dumps(task, pickle.HIGHEST_PROTOCOL))

    def signal(self, signum: int) -> None:
        if self.process.pid and self.process.exitcode is None:
            try:
                os.kill(self.process.pid, signum)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 2.0) -> None:
        """Ask an idle child to exit; kill it if it does not."""
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.process.join(timeout)
        if self.process.exitcode is None:
            self.signal(signal.SIGKILL)
            self.process.join(timeout)
        self.close()

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.process.join(5)
        self.close()

    def close(self) -> None:
        self.conn.close()
        if self.process.exitcode is not None:
            self.process.close()

    def exit_description(self) -> str:
        code = self.process.exitcode
        if code is None:
            return "is still running"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            hint = " (out of memory, or killed from outside)" if -code == signal.SIGKILL else ""
            return f"was killed by {name}{hint}"
        return f"exited with code {code}"


def _close_connections() -> None:
    """Close this process's database connections before it forks, so the child inherits
    none; the next query reconnects. SQLite forbids carrying a connection across
    `fork()`: children forked at a worker's start while its SQLite connection was open
    committed their steps' writes where no other connection ever saw them (a test worker
    lost every one). On PostgreSQL it costs a reconnect at each fork: at start, then once
    per `--max-runs-per-child` steps of a slot. A connection inside a transaction (a
    test's) is left open: closing it would end it."""
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            try:
                conn.close()
            except DatabaseError:  # a broken one is dropped all the same
                pass


# --------------------------------------------------------------------------- the child


def _child_main(conn: Connection, parent_end: Connection, parent_pid: int) -> None:
    parent_end.close()
    _forget_inherited_connections()
    # Its own process group: a Ctrl-C or a group SIGTERM meant for the worker does not
    # kill a step mid-way; the worker decides when steps stop (grace period, timeouts).
    os.setpgid(0, 0)
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # The spans step code ends go to the supervisor, which exports them (orbit/core/tracing.py).
    tracing.relay_to(lambda span: _send(conn, "span", span))
    # One handler for every task this child runs: a logging.Handler registers itself with
    # the logging module (under its global lock) when made and again when collected.
    handler = _PipeHandler(conn)
    databases = connections.all()
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        # Steps that use the ORM reuse this child's connection between tasks; drop it if
        # it broke meanwhile (database restart, pg_terminate_backend) instead of failing.
        # Only when one is open: most steps never open one, and the check walks every
        # configured database through Django's per-thread connection lookup.
        if any(database.connection is not None for database in databases):
            close_old_connections()
        report = run_task(task, conn, handler)
        try:
            _send(conn, "done", report)
        except (BrokenPipeError, OSError):
            return


#: One message at a time on the pipe: step code may log or end spans from its own threads.
_SEND_LOCK = threading.Lock()


def _send(conn: Connection, kind: str, payload: Any) -> None:
    message = pickle.dumps((kind, payload), pickle.HIGHEST_PROTOCOL)
    with _SEND_LOCK:
        conn.send_bytes(message)


def _forget_inherited_connections() -> None:
    """Drop the parent's database connections without closing them: closing would
    terminate the parent's session over the shared socket. The child opens its own."""
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        conn.connection = None
        conn.in_atomic_block = False
        conn.savepoint_ids = []
        conn.needs_rollback = False


def die_with_parent(parent_pid: int, signum: int = signal.SIGKILL) -> None:
    """Linux: the kernel sends `signum` to this process when its parent dies, even by
    SIGKILL, so a dead worker's step never keeps running unsupervised (and a worker under
    `--reload` stops with its reloader)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
    except OSError:
        pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


class _PipeHandler(logging.Handler):
    """Sends a step's log records to the supervisor as they happen, so logs written
    before a timeout or crash are kept too."""

    def __init__(self, conn: Connection) -> None:
        super().__init__(logging.DEBUG)
        self.conn = conn
        self.addFilter(TraceIds())  # the step's trace and span ids, while tracing

    def emit(self, record: logging.LogRecord) -> None:
        try:
            _send(self.conn, "log", log_entry(record))
        except Exception:
            self.handleError(record)


def log_entry(record: logging.LogRecord) -> dict[str, Any]:
    """A step's record as the worker stores it (StepLog), each field as a JSON log line
    shows it (`as_json_field`): a field nested too deeply to encode, or whose repr fails,
    says so, and the record is kept (it was lost to logging's handleError)."""
    fields = {key: as_json_field(value) for key, value in record_fields(record).items()}
    message = record.getMessage()
    if record.exc_info:
        message += "\n" + "".join(tb.format_exception(*record.exc_info))
    return {
        "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
        "level": record.levelname,
        "message": message,
        "fields": fields,
    }


#: Each step's logger, by pipeline and step: found once per child, not per task
#: (`logging.getLogger` takes the logging module's lock). As many as the steps defined.
_step_loggers: dict[tuple[str, str], logging.Logger] = {}


def step_logger(task: StepTask, handler: logging.Handler) -> logging.Logger:
    log = _step_loggers.get((task.pipeline, task.step))
    if log is None:
        log = logging.getLogger(f"orbit.step.{task.pipeline}.{task.step}")
        _step_loggers[task.pipeline, task.step] = log
    if log.handlers != [handler]:  # the child's one handler, whatever a step did to the list
        log.handlers = [handler]
    if log.level != logging.DEBUG:  # setLevel clears every logger's cache: only once
        log.setLevel(logging.DEBUG)
    log.propagate = False
    return log


#: `json.dumps(value, allow_nan=False)` without a new encoder per call.
_RESULT_ENCODER = json.JSONEncoder(allow_nan=False)


def encode_result(step: str, value: Any) -> str:
    """The result as JSON within ORBIT_MAX_RESULT_BYTES, or InvalidResult saying why."""
    try:
        encoded = _RESULT_ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise InvalidResult(
            f"Step {step!r} returned a result that is not JSON-serialisable: {exc}"
        ) from None
    limit = orbit_settings.max_result_bytes
    size = len(encoded.encode())
    if size > limit:
        raise InvalidResult(
            f"Step {step!r} returned a result of {size} bytes; the limit is {limit} bytes "
            "(ORBIT_MAX_RESULT_BYTES)"
        )
    return encoded


def run_task(
    task: StepTask, conn: Connection, handler: logging.Handler | None = None
) -> AttemptReport:
    """Run one attempt of a step and describe how it went. Never raises.

    Records go to the supervisor as they are written (`handler`, the child's own; one for
    this attempt when not given), so it keeps (and streams to the database) whatever was
    logged before a timeout, a crash or a cancel."""
    from pipelines.definition import registry

    if handler is None:
        handler = _PipeHandler(conn)
    started = time.monotonic()
    try:
        definition = registry.get(task.definition).step_named(task.step)
        ctx = StepContext(
            run_id=task.run_id,
            pipeline=task.pipeline,
            step=task.step,
            metadata=task.metadata,
            prev_results=task.prev_results,
            attempt=task.try_number,
            idempotency_key=task.idempotency_key,
            log=step_logger(task, handler),
            deadline=datetime.now(UTC) + timedelta(seconds=task.timeout),
        )
        with tracing.attached(task.trace_context):  # step code's spans nest under the step's
            value = definition.fn(ctx)
        if isinstance(value, StepResult) and not value.success:
            return attempts.reported_failure(task, value, time.monotonic() - started)
        data = value.data if isinstance(value, StepResult) else value
        encoded = encode_result(task.step, data)
        return attempts.succeeded(encoded, time.monotonic() - started)
    except BaseException as exc:
        return attempts.raised(task, exc, time.monotonic() - started)
