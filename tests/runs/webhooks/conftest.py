"""Webhook endpoints pointed at a real local receiver (tests/receiver.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import pytest

from runs.models import Webhook
from runs.webhook_lifecycle import webhook_create
from tests.receiver import Receiver, serving

SECRET = "whsec-tests-only-0123456789"
#: A worker process's webhook settings for the tests: the local receiver, quick retries.
WORKER_ENV = {
    "ORBIT_WEBHOOK_ALLOW_PRIVATE": "1",
    "ORBIT_WEBHOOK_POLL_INTERVAL": "0.1",
    "ORBIT_WEBHOOK_REFRESH": "0.5",
    "ORBIT_WEBHOOK_BACKOFF_BASE": "0.2",
    "ORBIT_POLL_INTERVAL": "0.1",
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving() as running:
        yield running


@pytest.fixture
def endpoint(settings, test_pipelines) -> Callable[..., Webhook]:
    """`endpoint(url, events=..., pipelines=...)`: an enabled endpoint; private
    addresses allowed (the receiver is on 127.0.0.1), quick retries."""
    settings.ORBIT_WEBHOOK_ALLOW_PRIVATE = True
    settings.ORBIT_WEBHOOK_BACKOFF_BASE = 0.2

    def make(
        url: str,
        events: Sequence[str] = ("run_failed", "run_quarantined"),
        pipelines: Sequence[str] = (),
    ) -> Webhook:
        return webhook_create(
            {
                "name": "receiver",
                "url": url,
                "events": list(events),
                "pipelines": list(pipelines),
                "secret": SECRET,
            }
        )

    return make
