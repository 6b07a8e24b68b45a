"""A local HTTP stand-in for Veryfi's v8 partner API that enforces the contract
(../shared/contracts/veryfi.md) as strictly as Veryfi does: auth headers, the HMAC
signature when a client secret is configured, JSON bodies, file size and type, and
Veryfi's error shape. Tests script failures for the next requests:

    with VeryfiStandIn() as veryfi:
        veryfi.script(Fail(429, retry_after=1), Fail(500), Slow(2), Malformed())

`python -m tests.veryfi_standin --port 8765` runs one on its own (the demo imports it).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import itertools
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import requests

API_PREFIX = "/api/v8/partner"
MIN_BYTES = 250
MAX_BYTES = 20 * 1024 * 1024
SIGNATURE_VALID_MS = 30 * 60 * 1000
_DOCUMENT_PATH = re.compile(rf"^{API_PREFIX}/documents/(\d+)/$")
_MAGIC = {
    b"%PDF": "pdf",
    b"\x89PNG": "png",
    b"\xff\xd8\xff": "jpg",
    b"GIF8": "gif",
    b"II*\x00": "tiff",
    b"MM\x00*": "tiff",
}


# ------------------------------------------------------------------ scripted behaviour


@dataclass(frozen=True)
class Fail:
    """Answer with Veryfi's error shape instead of processing."""

    status: int
    error: str = ""
    retry_after: float | str | None = None
    details: list[Any] | None = None


@dataclass(frozen=True)
class Slow:
    """Wait this long before answering normally (a client with a shorter timeout gives up)."""

    seconds: float


@dataclass(frozen=True)
class Malformed:
    """Answer with a body that is not JSON."""

    status: int = 201
    body: bytes = b'{"id": 1, "vendor": {"name": "trunc'


Behaviour = Fail | Slow | Malformed

DEFAULT_ERRORS = {
    400: "Bad request",
    401: "Not Authorized",
    403: "Forbidden",
    404: "Document not found",
    405: "Method not allowed",
    409: "Access limit reached",
    413: "File too large",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
    504: "Gateway timeout",
}


@dataclass
class Recorded:
    """One request as the stand-in received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0
    #: Set once the whole answer has been written to the socket.
    answered: threading.Event = field(default_factory=threading.Event)

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Answer:
    status: int
    payload: Any = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


class _Refused(Exception):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


# ------------------------------------------------------------------ the server


class VeryfiStandIn:
    """Veryfi on 127.0.0.1 (port 0: any free port), in a background thread."""

    def __init__(
        self,
        *,
        client_id: str = "standin-client-id",
        username: str = "standin-user",
        api_key: str = "standin-api-key",
        client_secret: str = "",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.client_id = client_id
        self.username = username
        self.api_key = api_key
        self.client_secret = client_secret
        self.requests: list[Recorded] = []
        self.documents: dict[int, dict[str, Any]] = {}
        self.files: dict[int, bytes] = {}
        #: Called with the new document after it is created and before it is sent: a test
        #: can stop or kill the client's process at exactly that moment.
        self.on_document: Any = None
        self._script: deque[Behaviour] = deque()
        self._ids = itertools.count(100_000_001)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        standin = self

        class Handler(_Handler):
            owner = standin

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        return self.address + API_PREFIX

    def settings(self) -> dict[str, str]:
        """The VERYFI_* settings a client needs to talk to this stand-in."""
        values = {
            "VERYFI_CLIENT_ID": self.client_id,
            "VERYFI_USERNAME": self.username,
            "VERYFI_API_KEY": self.api_key,
            "VERYFI_API_BASE_URL": self.base_url,
            "VERYFI_CLIENT_SECRET": self.client_secret,
        }
        return values

    def start(self) -> VeryfiStandIn:
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.05},  # how long stop() waits for the loop
            name="veryfi-standin",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in Slow
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> VeryfiStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting and inspection

    def script(self, *behaviours: Behaviour) -> None:
        """The next requests to /documents/ get these behaviours, one each, in order."""
        with self._lock:
            self._script.extend(behaviours)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()
            self.documents.clear()
            self.files.clear()
            self.on_document = None

    def process_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST"]

    def _next_behaviour(self) -> Behaviour | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    # -- the API

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> _Answer:
        if path.startswith("/files/"):
            return self._file(path)
        behaviour = self._next_behaviour()
        if isinstance(behaviour, Slow):
            self._stopping.wait(behaviour.seconds)
        elif isinstance(behaviour, Fail):
            answer = _error(
                behaviour.status, behaviour.error or DEFAULT_ERRORS.get(behaviour.status, "Error")
            )
            if behaviour.details is not None:
                answer.payload["details"] = behaviour.details
            if behaviour.retry_after is not None:
                answer.headers["Retry-After"] = str(behaviour.retry_after)
            return answer
        elif isinstance(behaviour, Malformed):
            return _Answer(behaviour.status, raw=behaviour.body)
        try:
            return self._route(method, path, headers, body)
        except _Refused as refused:
            return _error(refused.status, refused.error)

    def _route(self, method: str, path: str, headers: dict[str, str], body: bytes) -> _Answer:
        if not path.startswith(API_PREFIX + "/"):
            raise _Refused(404, "Not found")
        self._authorise(method, headers, body)
        if path == f"{API_PREFIX}/documents/":
            if method != "POST":
                raise _Refused(405, f"Method {method} not allowed")
            return self._process(headers, body)
        match = _DOCUMENT_PATH.match(path)
        if not match:
            raise _Refused(404, "Not found")
        document_id = int(match.group(1))
        if document_id not in self.documents:
            raise _Refused(404, "Document not found")
        if method == "GET":
            return _Answer(200, self.documents[document_id])
        if method == "DELETE":
            del self.documents[document_id]
            return _Answer(200, {"status": "ok"})
        raise _Refused(405, f"Method {method} not allowed")

    def _authorise(self, method: str, headers: dict[str, str], body: bytes) -> None:
        if headers.get("client-id") != self.client_id:
            raise _Refused(401, "Not Authorized: unknown or missing CLIENT-ID")
        if headers.get("authorization") != f"apikey {self.username}:{self.api_key}":
            raise _Refused(401, "Not Authorized: bad AUTHORIZATION header")
        if not self.client_secret:
            return
        timestamp = headers.get("x-veryfi-request-timestamp", "")
        signature = headers.get("x-veryfi-request-signature", "")
        if not timestamp.isdigit() or not signature:
            raise _Refused(401, "Not Authorized: missing request signature")
        if abs(time.time() * 1000 - int(timestamp)) > SIGNATURE_VALID_MS:
            raise _Refused(401, "Not Authorized: request signature expired")
        params: dict[str, Any] = {}
        if method in ("POST", "PUT") and body:
            try:
                params = json.loads(body)
            except ValueError:
                raise _Refused(400, "Malformed JSON body") from None
        expected = _signature(self.client_secret, timestamp, params)
        if not hmac.compare_digest(expected, signature):
            raise _Refused(401, "Not Authorized: invalid request signature")

    def _process(self, headers: dict[str, str], body: bytes) -> _Answer:
        if not headers.get("content-type", "").startswith("application/json"):
            raise _Refused(400, "Content-Type must be application/json")
        try:
            params = json.loads(body)
        except ValueError:
            raise _Refused(400, "Malformed JSON body") from None
        if not isinstance(params, dict):
            raise _Refused(400, "The body must be a JSON object")
        for key in ("confidence_details", "bounding_boxes", "async"):
            if params.get(key):
                raise _Refused(400, f"The stand-in does not support {key!r}")
        if params.get("file_url"):
            content = _download(str(params["file_url"]))
            name = urlsplit(str(params["file_url"])).path.rsplit("/", 1)[-1]
        elif params.get("file_data") and params.get("file_name"):
            content = _decode(str(params["file_data"]))
            name = str(params["file_name"])
        else:
            raise _Refused(400, "Missing parameters: file_url, or file_name and file_data")
        if len(content) > MAX_BYTES:
            raise _Refused(413, f"File too large: {len(content)} bytes; the limit is {MAX_BYTES}")
        if len(content) < MIN_BYTES:
            raise _Refused(400, f"Bad or corrupted file: {len(content)} bytes is too small")
        kind = next((k for magic, k in _MAGIC.items() if content.startswith(magic)), None)
        if kind is None:
            raise _Refused(400, f"Unsupported file type: {name}")
        document_id = next(self._ids)
        document = receipt(document_id, params, self.address, kind)
        self.documents[document_id] = document
        self.files[document_id] = content
        if self.on_document is not None:
            self.on_document(document)
        return _Answer(201, document)

    def _file(self, path: str) -> _Answer:
        match = re.match(r"^/files/(\d+)$", path)
        content = self.files.get(int(match.group(1))) if match else None
        if content is None:
            return _error(404, "File not found")
        return _Answer(200, raw=content, headers={"Content-Type": "application/octet-stream"})


class _Handler(BaseHTTPRequestHandler):
    owner: VeryfiStandIn
    protocol_version = "HTTP/1.1"
    server_version = "VeryfiStandIn/1.0"

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        recorded = Recorded(method, self.path, dict(self.headers.items()), body)
        self.owner.requests.append(recorded)
        answer = self.owner.answer(method, urlsplit(self.path).path, headers, body)
        recorded.status = answer.status
        data = answer.raw if answer.raw is not None else json.dumps(answer.payload).encode()
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.headers.pop("Content-Type", "application/json"))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
            recorded.answered.set()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout): as with Veryfi, the work is done anyway

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _error(status: int, message: str) -> _Answer:
    return _Answer(status, {"status": "fail", "error": message})


def _signature(secret: str, timestamp: str, params: dict[str, Any]) -> str:
    """Written independently of services.veryfi.sign, from the SDK's description."""
    payload = f"timestamp:{timestamp}"
    for key in params:
        payload = f"{payload},{key}:{params[key]}"
    digest = hmac.new(bytes(secret, "utf-8"), msg=bytes(payload, "utf-8"), digestmod=hashlib.sha256)
    return base64.b64encode(digest.digest()).decode("utf-8").strip()


def _download(url: str) -> bytes:
    if urlsplit(url).scheme not in ("http", "https"):
        raise _Refused(400, "URL not downloadable: only http and https URLs are fetched")
    try:
        response = requests.get(url, timeout=10)
    except requests.RequestException:
        raise _Refused(400, "URL not downloadable: could not connect") from None
    if response.status_code != 200:
        raise _Refused(400, f"URL not downloadable: HTTP {response.status_code}")
    return response.content


def _decode(data: str) -> bytes:
    if data.startswith("data:"):
        data = data.partition(",")[2]
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise _Refused(400, "Bad or corrupted file: file_data is not base64") from None


def receipt(document_id: int, params: dict[str, Any], address: str, kind: str) -> dict[str, Any]:
    """The document Veryfi would extract from the sample receipt (services/samples/)."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return {
        "id": document_id,
        "external_id": params.get("external_id"),
        "document_type": "receipt",
        "created_date": now,
        "updated_date": now,
        "date": "2025-11-27 08:42:00",
        "currency_code": "USD",
        "category": "Meals & Entertainment",
        "subtotal": 11.5,
        "tax": 1.0,
        "tip": None,
        "total": 12.5,
        "invoice_number": "A-1042",
        "vendor": {
            "name": "Orbit Coffee Roasters",
            "raw_name": "ORBIT COFFEE ROASTERS",
            "address": "12 Launch Pad Way, Springfield",
            "phone_number": "555-0100",
            "email": None,
            "vat_number": None,
        },
        "payment": {"type": "visa", "card_number": "4242", "display_name": "Visa ***4242"},
        "line_items": [
            {
                "id": 1,
                "order": 0,
                "description": "Flat white",
                "quantity": 2,
                "price": 4.0,
                "total": 8.0,
                "tax": None,
                "sku": None,
                "type": "food",
            },
            {
                "id": 2,
                "order": 1,
                "description": "Almond croissant",
                "quantity": 1,
                "price": 3.5,
                "total": 3.5,
                "tax": None,
                "sku": None,
                "type": "food",
            },
        ],
        "tags": [{"name": tag} for tag in params.get("tags") or []],
        "is_duplicate": False,
        "status": "processed",
        "img_url": f"{address}/files/{document_id}",
        "img_thumbnail_url": f"{address}/files/{document_id}",
        "pdf_url": f"{address}/files/{document_id}" if kind == "pdf" else None,
        "ocr_text": (
            "ORBIT COFFEE ROASTERS\n12 Launch Pad Way, Springfield\n2025-11-27 08:42\n"
            "2 Flat white 8.00\n1 Almond croissant 3.50\nSUBTOTAL 11.50\nTAX 1.00\nTOTAL 12.50\n"
            "VISA ***4242"
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the Veryfi stand-in until Ctrl-C.")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--client-secret", default="")
    args = parser.parse_args()
    standin = VeryfiStandIn(port=args.port, client_secret=args.client_secret).start()
    for name, value in standin.settings().items():
        print(f"{name}={value}")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        standin.stop()


if __name__ == "__main__":
    main()
