"""Each process's list of enabled webhook endpoints, so the hot path asks nothing.

Every committed run outcome asks "does any enabled endpoint want this event?". Asking the
database each time would add a statement to every commit (the counts tests/runs pin), to
answer "no" for nearly every installation. So each process keeps the answer:

- a worker loads it when it starts and again every ORBIT_WEBHOOK_REFRESH seconds, in its
  `webhooks` duty (runs/worker/loop.py), between commits, never inside one;
- any other process (the web, the CLI) loads it on first need and again once it is older
  than ORBIT_WEBHOOK_REFRESH;
- saving or deleting an endpoint forgets it in the process that did it at once.

The price: another process learns of a new, changed or disabled endpoint up to
ORBIT_WEBHOOK_REFRESH seconds (default 5) late, so events in that window reach the old
list. A delivery for an endpoint disabled or deleted meanwhile is abandoned by the sender.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from orbit.core.conf import orbit_settings
from runs.models import Webhook


@dataclass(frozen=True)
class Endpoint:
    """An enabled endpoint as the hot path needs it: which events, which pipelines."""

    id: int
    events: frozenset[str]
    pipelines: frozenset[str]

    def wants(self, event: str, pipeline: str) -> bool:
        return event in self.events and (not self.pipelines or pipeline in self.pipelines)


class _Cache:
    endpoints: tuple[Endpoint, ...] = ()
    loaded_at: float = float("-inf")


_cache = _Cache()


def enabled() -> tuple[Endpoint, ...]:
    """The enabled endpoints: no query while the list is younger than ORBIT_WEBHOOK_REFRESH."""
    if time.monotonic() - _cache.loaded_at >= orbit_settings.webhook_refresh:
        refresh()
    return _cache.endpoints


def refresh() -> tuple[Endpoint, ...]:
    """Load the list now (one query)."""
    rows = Webhook.objects.enabled().values_list("id", "events", "pipelines")
    assume(
        Endpoint(id=id_, events=frozenset(events or ()), pipelines=frozenset(pipelines or ()))
        for id_, events, pipelines in rows
    )
    return _cache.endpoints


def assume(endpoints: Iterable[Endpoint] = ()) -> None:
    """Take `endpoints` as the list, loaded now (tests start from an empty one)."""
    _cache.endpoints = tuple(endpoints)
    _cache.loaded_at = time.monotonic()


def forget(**_: Any) -> None:
    """Load the list again on next need: now, and once the current transaction commits
    (a receiver of Webhook's post_save and post_delete, connected in runs/apps.py)."""
    _cache.loaded_at = float("-inf")
    transaction.on_commit(_forget_now)


def _forget_now() -> None:
    _cache.loaded_at = float("-inf")
