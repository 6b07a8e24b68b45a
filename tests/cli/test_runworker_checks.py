"""`runworker`'s system checks: every tagged one but the URL configuration's, which a
worker does not serve (importing the URLconf to check it was a third of its start)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core import checks
from django.core.checks.registry import registry
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from runs.models import Worker

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def failing_check() -> Iterator[Any]:
    """Registers a check that fails, under the tags given; unregistered afterwards."""
    added = []

    def register(*tags: str) -> None:
        def fails(**kwargs: Any) -> list[checks.CheckMessage]:
            return [checks.Error(f"broken ({', '.join(tags)})", id="tests.E001")]

        checks.register(fails, *tags)
        added.append(fails)

    yield register
    for check in added:
        registry.registered_checks.discard(check)


def start_worker() -> None:
    call_command(
        "runworker", "--burst", "--no-schedules", "--no-listen", "--concurrency", "1",
        skip_checks=False,
    )  # fmt: skip


def test_a_failing_check_stops_the_worker_before_it_registers(test_pipelines, failing_check):
    failing_check(checks.Tags.models)
    with pytest.raises(SystemCheckError, match=r"broken \(models\)"):
        start_worker()
    assert not Worker.objects.exists()


def test_the_url_configuration_is_not_checked_by_a_worker(test_pipelines, failing_check):
    failing_check(checks.Tags.urls)
    start_worker()
    assert Worker.objects.get().state == "stopped"
    with pytest.raises(SystemCheckError, match=r"broken \(urls\)"):
        call_command("check")  # the web process's check still runs it
