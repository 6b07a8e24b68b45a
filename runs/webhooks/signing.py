"""How a receiver knows a webhook came from Orbit: an HMAC-SHA256 over the timestamp and
the body, with the endpoint's secret, in headers (docs/WEBHOOKS.md has a receiver).

The timestamp is signed with the body so a captured request cannot be replayed later
than the receiver's tolerance window; the delivery id lets receivers drop a delivery
they already handled (delivery is at least once).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

ID_HEADER = "Orbit-Webhook-Id"
EVENT_HEADER = "Orbit-Webhook-Event"
TIMESTAMP_HEADER = "Orbit-Webhook-Timestamp"
SIGNATURE_HEADER = "Orbit-Webhook-Signature"
SCHEME = "v1"
#: What a receiver should accept by default: five minutes either way.
TOLERANCE_SECONDS = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `f"{timestamp}.{body}"` with `secret`."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def headers(
    *, delivery_id: str, event: str, secret: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """Every header of one delivery's POST."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json",
        "User-Agent": "Orbit-Webhooks/1",
        ID_HEADER: delivery_id,
        EVENT_HEADER: event,
        TIMESTAMP_HEADER: str(stamp),
        SIGNATURE_HEADER: f"{SCHEME}={signature(secret, stamp, body)}",
    }


def verify(
    secret: str,
    received: Mapping[str, str],
    body: bytes,
    *,
    tolerance: float = TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """Whether `received` headers sign `body` with `secret`, within `tolerance` seconds.

    What a receiver does (docs/WEBHOOKS.md shows it standalone); Orbit's tests use it.
    """
    lower = {k.lower(): v for k, v in received.items()}
    try:
        stamp = int(lower[TIMESTAMP_HEADER.lower()])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - stamp) > tolerance:
        return False
    expected = signature(secret, stamp, body)
    offered = [
        part.split("=", 1)[1]
        for part in lower.get(SIGNATURE_HEADER.lower(), "").split(",")
        if part.strip().startswith(f"{SCHEME}=")
    ]
    return any(hmac.compare_digest(expected, value.strip()) for value in offered)
