"""A real HTTP server in a thread that stands in for a webhook receiver."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    at: float  # time.monotonic()
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def delivery_id(self) -> str:
        return self.headers["Orbit-Webhook-Id"]


@dataclass
class Receiver:
    """Answers each POST with `status` (or `answer(received)`), recording it first."""

    status: int = 200
    answer: Callable[[Received], int] | None = None
    received: list[Received] = field(default_factory=list)
    url: str = ""
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """Block until `count` requests arrived (fail after `timeout` seconds)."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(
                    f"the receiver got {len(self.received)} request(s), not {count}, in {timeout} s"
                )
            return list(self.received)

    def _handle(self, handler: BaseHTTPRequestHandler) -> int:
        length = int(handler.headers.get("Content-Length") or 0)
        got = Received(
            at=time.monotonic(),
            path=handler.path,
            headers=dict(handler.headers.items()),
            body=handler.rfile.read(length),
        )
        with self._changed:
            self.received.append(got)
            self._changed.notify_all()
        return self.answer(got) if self.answer is not None else self.status


@contextmanager
def serving(receiver: Receiver | None = None, host: str = "127.0.0.1") -> Iterator[Receiver]:
    """Serve `receiver` on a free port of `host` for the block."""
    receiver = receiver or Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            status = receiver._handle(self)
            body = b"ok" if status < 400 else b"no"
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the sender is gone (a killed worker)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://{host}:{server.server_address[1]}/hooks/orbit"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
