"""The Veryfi v8 partner API: process, get and delete documents.

Requests carry the contract's headers and, when a client secret is configured, an HMAC
signature over exactly the JSON that is sent. Inside one step attempt, connection errors,
timeouts, 409, 429 and 5xx are retried with bounded exponential backoff (the `backoff`
library), honouring `Retry-After`; other 4xx raise `VeryfiRejected` at once. Keys, the
secret, signatures and presigned URLs never appear in logs or error messages.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import backoff
import requests

from pipelines.retry import Backoff
from services import conf
from services.exceptions import NotConfigured, VeryfiBadResponse, VeryfiRejected, VeryfiUnavailable

logger = logging.getLogger(__name__)

REDACTED = "[redacted]"
_RETRY_STATUSES = {409, 429}  # and every 5xx


@dataclass(frozen=True)
class VeryfiConfig:
    client_id: str
    username: str
    api_key: str = field(repr=False)
    client_secret: str = field(default="", repr=False)
    base_url: str = conf.DEFAULT_VERYFI_API_BASE_URL
    timeout_ms: int = conf.DEFAULT_VERYFI_TIMEOUT_MS

    @classmethod
    def from_settings(cls) -> VeryfiConfig:
        """The configuration from settings; NotConfigured names the first missing variable."""
        base_url = conf.optional("VERYFI_API_BASE_URL", conf.DEFAULT_VERYFI_API_BASE_URL)
        if urlsplit(base_url).scheme not in ("http", "https") or not urlsplit(base_url).netloc:
            raise NotConfigured(
                f"VERYFI_API_BASE_URL must be an http(s) URL such as "
                f"{conf.DEFAULT_VERYFI_API_BASE_URL}, not {base_url!r}"
            )
        return cls(
            client_id=conf.required("VERYFI_CLIENT_ID", "the Veryfi client id (Settings > Keys)"),
            username=conf.required("VERYFI_USERNAME", "the Veryfi account's username"),
            api_key=conf.required("VERYFI_API_KEY", "the Veryfi API key"),
            client_secret=conf.optional("VERYFI_CLIENT_SECRET"),
            base_url=base_url.rstrip("/"),
            timeout_ms=conf.positive_int("VERYFI_TIMEOUT", conf.DEFAULT_VERYFI_TIMEOUT_MS),
        )

    @property
    def timeout(self) -> float:
        """Seconds each request may take (VERYFI_TIMEOUT is in milliseconds)."""
        return self.timeout_ms / 1000

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.api_key, self.client_secret) if s)


RETRY_BACKOFF = Backoff(base=1.0, factor=2.0, cap=20.0)


@dataclass(frozen=True)
class RetryRules:
    """How hard one attempt tries: at most `max_tries` requests and `max_wait` seconds of
    waiting between them; a `Retry-After` from Veryfi replaces the backoff delay."""

    max_tries: int = 3
    backoff: Backoff = RETRY_BACKOFF
    max_wait: float = 60.0


DEFAULT_RULES = RetryRules()


def sign(secret: str, timestamp: str, body: dict[str, Any]) -> str:
    """Veryfi's request signature, as its official SDK computes it: base64 HMAC-SHA256 of
    `timestamp:<ts>,<key>:<str(value)>...` over the body's keys in serialisation order."""
    payload = f"timestamp:{timestamp}"
    for key, value in body.items():
        payload += f",{key}:{value}"
    digest = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode().strip()


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds: a number, or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None


class VeryfiClient:
    """`with VeryfiClient(config) as veryfi: veryfi.process_document(file_url=...)`."""

    def __init__(
        self,
        config: VeryfiConfig,
        *,
        rules: RetryRules | None = None,
        log: logging.Logger | None = None,
        deadline: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.rules = rules or DEFAULT_RULES
        self.log = log or logger
        # time.monotonic() by which this attempt must be over: no retry starts that
        # could not finish before it, so the step fails with Veryfi's error instead of
        # being killed at its timeout.
        self.deadline = deadline
        self.clock = clock
        self.session = requests.Session()
        self._sensitive: set[str] = set(config.secrets)

    def __enter__(self) -> VeryfiClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    # ----------------------------------------------------------------- operations

    def process_document(
        self,
        *,
        file_url: str | None = None,
        file_name: str | None = None,
        file_data: str | None = None,
        external_id: str | None = None,
        tags: Iterable[str] = (),
    ) -> dict[str, Any]:
        """Process a document given by URL or by base64 data; returns Veryfi's document."""
        if (file_url is None) == (file_data is None):
            raise ValueError("Pass either file_url or file_name and file_data")
        body: dict[str, Any] = {}
        if file_url is not None:
            self.redact_also(file_url, urlsplit(file_url).query)
            body["file_url"] = file_url
        else:
            if not file_name:
                raise ValueError("file_data needs a file_name")
            body["file_name"] = file_name
            body["file_data"] = file_data
        if external_id:
            body["external_id"] = external_id
        if tags:
            body["tags"] = list(tags)
        document = self._request("POST", "documents/", body)
        document_id = document.get("id")
        if isinstance(document_id, bool) or not isinstance(document_id, int):
            raise VeryfiBadResponse(
                f"Veryfi's answer has no document id: {self._snippet(json.dumps(document))}"
            )
        return document

    def get_document(self, document_id: int) -> dict[str, Any]:
        return self._request("GET", f"documents/{int(document_id)}/")

    def delete_document(self, document_id: int) -> dict[str, Any]:
        return self._request("DELETE", f"documents/{int(document_id)}/")

    def redact_also(self, *values: str) -> None:
        """Keep these strings (a presigned URL, its signature) out of every message."""
        self._sensitive.update(v for v in values if v)

    # ----------------------------------------------------------------- the wire

    def headers(self, body: dict[str, Any] | None) -> dict[str, str]:
        headers = {
            "CLIENT-ID": self.config.client_id,
            "AUTHORIZATION": f"apikey {self.config.username}:{self.config.api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "orbit-veryfi/1.0",
        }
        if self.config.client_secret:
            timestamp = str(int(self.clock() * 1000))
            headers["X-Veryfi-Request-Timestamp"] = timestamp
            headers["X-Veryfi-Request-Signature"] = sign(
                self.config.client_secret, timestamp, body or {}
            )
        return headers

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        tries = 0
        stopped: list[str] = []

        def once() -> dict[str, Any]:
            nonlocal tries
            tries += 1
            return self._send(method, path, body)

        retrying = backoff.on_exception(
            self._waits,  # type: ignore[arg-type]  # backoff's stubs miss send() generators
            VeryfiUnavailable,
            max_tries=self.rules.max_tries,
            jitter=None,  # _waits jitters backoff delays itself and keeps Retry-After exact
            on_backoff=self._log_retry,
            logger=None,
            stopped=stopped,
        )(once)
        try:
            return retrying()
        except VeryfiUnavailable as exc:
            why = stopped[0] if stopped else ""
            plural = "try" if tries == 1 else "tries"
            raise VeryfiUnavailable(
                f"{exc} (gave up after {tries} {plural}{why})",
                status=exc.status,
                retry_after=exc.retry_after,
            ) from None

    def _waits(self, stopped: list[str]) -> Generator[float | None, Any, None]:
        """backoff's wait generator: it is sent each failure and yields the next delay;
        returning gives up with the last error."""
        exc = yield None
        failures = 0
        waited = 0.0
        while True:
            failures += 1
            retry_after = getattr(exc, "retry_after", None)
            delay = retry_after if retry_after is not None else self.rules.backoff.delay(failures)
            if waited + delay > self.rules.max_wait:
                stopped.append(
                    f"; the next wait of {delay:g} s is past the {self.rules.max_wait:g} s retry budget"
                )
                return
            if self.deadline is not None and (
                time.monotonic() + delay + self.config.timeout > self.deadline
            ):
                stopped.append("; no time left in this attempt for another try")
                return
            waited += delay
            exc = yield delay

    def _log_retry(self, details: Any) -> None:
        self.log.warning(
            "%s; retrying in %.1f s (try %d of %d)",
            details["exception"],
            details["wait"],
            details["tries"],
            self.rules.max_tries,
            extra={"event": "veryfi_retry", "wait": round(details["wait"], 3)},
        )

    def _send(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        """One request, no retries; every failure becomes one of services.exceptions."""
        url = f"{self.config.base_url}/{path}"
        # Serialise once: the signature covers exactly the dictionary that is sent.
        data = json.dumps(body).encode() if body is not None else None
        try:
            response = self.session.request(
                method, url, data=data, headers=self.headers(body), timeout=self.config.timeout
            )
        except requests.Timeout:
            raise VeryfiUnavailable(self._timed_out()) from None
        except requests.RequestException as exc:
            if "timed out" in str(exc):
                raise VeryfiUnavailable(self._timed_out()) from None
            raise VeryfiUnavailable(
                f"Could not reach Veryfi at {urlsplit(url).netloc}: {self._reason(exc)}"
            ) from None
        return self._parse(response)

    def _timed_out(self) -> str:
        return (
            f"Veryfi did not answer within {self.config.timeout:g} s "
            f"(VERYFI_TIMEOUT={self.config.timeout_ms} ms)"
        )

    def _parse(self, response: requests.Response) -> dict[str, Any]:
        status = response.status_code
        if 200 <= status < 300:
            try:
                payload = response.json()
            except ValueError:
                raise VeryfiBadResponse(
                    f"Veryfi answered HTTP {status} with a body that is not JSON: "
                    f"{self._snippet(response.text)}"
                ) from None
            if not isinstance(payload, dict):
                raise VeryfiBadResponse(
                    f"Veryfi answered HTTP {status} with JSON that is not an object: "
                    f"{self._snippet(response.text)}"
                )
            return payload
        message = self._error_message(response)
        if status in _RETRY_STATUSES or status >= 500:
            raise VeryfiUnavailable(
                f"Veryfi answered HTTP {status}: {message}",
                status=status,
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            )
        raise VeryfiRejected(
            f"Veryfi refused the request (HTTP {status}): {message}", status=status
        )

    def _error_message(self, response: requests.Response) -> str:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if isinstance(payload, dict) and payload.get("error"):
            message = str(payload["error"])
            if payload.get("details"):
                message += f" (details: {json.dumps(payload['details'], default=str)})"
            return self._snippet(message)
        text = response.text.strip()
        return self._snippet(text) if text else (response.reason or "no error message")

    def _snippet(self, text: str, limit: int = 500) -> str:
        for secret in sorted(self._sensitive, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        text = " ".join(text.split())
        return text if len(text) <= limit else text[:limit] + "..."

    def _reason(self, exc: requests.RequestException) -> str:
        match = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(exc))
        return self._snippet(match.group(1).strip() if match else type(exc).__name__)
