"""runs/webhooks/signing.py: the headers a receiver checks."""

from __future__ import annotations

import hashlib
import hmac

from runs.webhooks import signing

SECRET = "s3cret-for-the-tests-only"
BODY = b'{"event":"run_failed"}'


def test_the_signature_is_an_hmac_of_the_timestamp_and_the_body():
    headers = signing.headers(
        delivery_id="d-1", event="run_failed", secret=SECRET, body=BODY, timestamp=1700000000
    )
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert headers == {
        "Content-Type": "application/json",
        "User-Agent": "Orbit-Webhooks/1",
        "Orbit-Webhook-Id": "d-1",
        "Orbit-Webhook-Event": "run_failed",
        "Orbit-Webhook-Timestamp": "1700000000",
        "Orbit-Webhook-Signature": f"v1={expected}",
    }


def test_a_receiver_accepts_it_within_the_window_only():
    headers = signing.headers(
        delivery_id="d", event="run_failed", secret=SECRET, body=BODY, timestamp=1000
    )
    assert signing.verify(SECRET, headers, BODY, now=1000 + 299)
    assert not signing.verify(SECRET, headers, BODY, now=1000 + 301)  # too old: a replay


def test_a_changed_body_a_wrong_secret_or_a_missing_header_fails():
    headers = signing.headers(delivery_id="d", event="e", secret=SECRET, body=BODY, timestamp=5)
    assert not signing.verify(SECRET, headers, BODY + b" ", now=5)
    assert not signing.verify("another-secret-entirely", headers, BODY, now=5)
    assert not signing.verify(SECRET, {**headers, "Orbit-Webhook-Timestamp": "6"}, BODY, now=5)
    del headers["Orbit-Webhook-Signature"]
    assert not signing.verify(SECRET, headers, BODY, now=5)
