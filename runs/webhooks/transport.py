"""One webhook POST, to an address the SSRF guard checked (runs/webhooks/targets.py).

Plain `http.client`, not `requests` (which the engine does not import: pyproject's
import-linter contract): it connects to the checked IP address itself while sending the
URL's host name in `Host` and in TLS's SNI and certificate check, so the name is never
resolved a second time (no DNS rebinding), and it never follows a redirect.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from runs.webhooks.targets import Target

#: Of the receiver's answer we read this much at most (it is not stored, only its code).
MAX_RESPONSE_BYTES = 64 * 1024


@dataclass(frozen=True)
class Response:
    status: int
    reason: str


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a fixed address, checking the certificate against the URL's host."""

    def __init__(self, address: str, port: int, *, server_name: str, **kwargs: Any) -> None:
        super().__init__(address, port, context=ssl.create_default_context(), **kwargs)
        self._server_name = server_name

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self._server_name)  # type: ignore[attr-defined]


def post(target: Target, body: bytes, headers: dict[str, str], *, timeout: float) -> Response:
    """POST `body` to `target`, trying its checked addresses in turn until one connects;
    raises OSError (or http.client.HTTPException) when none answers."""
    last: Exception | None = None
    for address in target.addresses:
        connection: http.client.HTTPConnection
        if target.scheme == "https":
            connection = _PinnedHTTPSConnection(
                address, target.port, server_name=target.host, timeout=timeout
            )
        else:
            connection = http.client.HTTPConnection(address, target.port, timeout=timeout)
        try:
            connection.request(
                "POST", target.path, body=body, headers={**headers, "Host": target.host_header}
            )
            answer = connection.getresponse()
            answer.read(MAX_RESPONSE_BYTES)
            return Response(status=answer.status, reason=answer.reason)
        except ConnectionRefusedError as exc:
            last = exc  # the next address may answer
        finally:
            connection.close()
    raise last or OSError("no address to connect to")
