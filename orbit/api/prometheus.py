"""GET /metrics: Prometheus text computed from the database at scrape time.

Workers on many hosts share one database, so reading it counts all of them; no worker
has to expose its own endpoint. Gauges describe now. Counters and histograms count what
finished since midnight UTC: reading the whole history on every scrape would grow without
bound, and a daily restart from zero is what `rate()` and `increase()` already handle
for a restarted process (the `_created` sample marks the start). docs/METRICS.md.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from orbit.core.clock import db_now
from runs import metrics

logger = logging.getLogger(__name__)


class OrbitCollector(Collector):
    """Reads every figure from the database each time Prometheus scrapes."""

    def describe(self) -> list[Metric]:
        return []  # no database access when registered

    def collect(self) -> Iterator[Metric]:
        now = db_now()
        since = metrics.start_of_day(now)
        created = since.timestamp()
        live = metrics.live_figures(now)

        runs = GaugeMetricFamily("orbit_runs", "Runs pending or running now.", labels=["status"])
        runs.add_metric(["pending"], live.pending)
        runs.add_metric(["running"], live.running)
        yield runs
        yield GaugeMetricFamily(
            "orbit_runs_interrupted",
            "Running runs whose lease expired: their worker is gone; recovery requeues them.",
            value=live.interrupted,
        )
        yield GaugeMetricFamily(
            "orbit_queue_depth",
            "Pending runs due now, of enabled, unarchived, unpaused pipelines on unpaused queues: what idle "
            "workers would claim.",
            value=live.queue_depth,
        )
        yield GaugeMetricFamily(
            "orbit_runs_delayed", "Pending runs waiting for a retry delay.", value=live.delayed
        )
        yield GaugeMetricFamily(
            "orbit_oldest_pending_age_seconds",
            "How long the longest-waiting due run has waited (0 when none waits).",
            value=live.oldest_pending_age or 0.0,
        )
        workers = GaugeMetricFamily(
            "orbit_workers",
            "Workers not stopped: alive (heartbeat within a lease) or dead (silent).",
            labels=["state"],
        )
        for state, count in metrics.worker_counts(now).items():
            workers.add_metric([state], count)
        yield workers

        finished = CounterMetricFamily(
            "orbit_runs_finished",
            "Runs finished since midnight UTC, by outcome.",
            labels=["status"],
            created=created,
        )
        for status, count in metrics.finished_counts(since, now).items():
            finished.add_metric([status], count, created=created)
        yield finished
        by_pipeline = CounterMetricFamily(
            "orbit_pipeline_runs_finished",
            "Runs finished since midnight UTC, by pipeline and outcome.",
            labels=["pipeline", "status"],
            created=created,
        )
        for name, outcomes in sorted(metrics.finished_counts_by_pipeline(since, now).items()):
            for status, count in outcomes.items():
                by_pipeline.add_metric([name, status], count, created=created)
        yield by_pipeline
        yield CounterMetricFamily(
            "orbit_runs_quarantined",
            "Runs quarantined since midnight UTC: failed for interrupting their workers too often.",
            value=metrics.quarantined_count(since, now),
            created=created,
        )
        counts = metrics.attempt_counts(since, now)
        retries = counts.pop("retries")
        attempts = CounterMetricFamily(
            "orbit_step_attempts",
            "Step attempts recorded since midnight UTC, by outcome.",
            labels=["outcome"],
            created=created,
        )
        for outcome, count in counts.items():
            attempts.add_metric([outcome], count, created=created)
        yield attempts
        yield CounterMetricFamily(
            "orbit_step_retries",
            "Step attempts after a step's first, since midnight UTC.",
            value=retries,
            created=created,
        )
        yield _histogram(
            "orbit_run_duration_seconds",
            "Start-to-finish time of runs that succeeded or failed since midnight UTC.",
            metrics.run_duration_histogram(since, now),
        )
        yield _histogram(
            "orbit_step_attempt_duration_seconds",
            "Duration of step attempts recorded since midnight UTC, all outcomes.",
            metrics.step_duration_histogram(since, now),
        )


def _histogram(name: str, documentation: str, histogram: metrics.Histogram) -> Metric:
    buckets = [(floatToGoString(b.le), b.count) for b in histogram.buckets]  # type: ignore[no-untyped-call]
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=histogram.sum)


def render(accept: str = "") -> tuple[bytes, str]:
    """The current figures, and their content type, in the format the scraper accepts."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OrbitCollector())
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type


@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus scrapes with `Authorization: Bearer $ORBIT_METRICS_TOKEN`; staff may browse."""
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    try:
        body, content_type = render(request.headers.get("Accept", ""))
    except DatabaseError:
        logger.exception("Metrics unavailable", extra={"event": "metrics_failed"})
        return HttpResponse("database unavailable\n", status=503, content_type="text/plain")
    return HttpResponse(body, content_type=content_type)


def _refusal(request: HttpRequest) -> HttpResponse | None:
    expected: Any = getattr(settings, "ORBIT_METRICS_TOKEN", "")
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if expected and scheme.lower() == "bearer" and _same(token.strip(), expected):
            return None
        return _text("invalid metrics token\n", 401)
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return _text("authentication required: Authorization: Bearer <ORBIT_METRICS_TOKEN>\n", 401)
    if not user.is_staff:
        return _text("staff only\n", 403)
    return None


def _same(given: str, expected: str) -> bool:
    """A constant-time comparison of bytes: `compare_digest` on str refuses non-ASCII text
    (a TypeError, so a 500), and a header may carry any Latin-1 character."""
    return hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape")
    )


def _text(body: str, status: int) -> HttpResponse:
    response = HttpResponse(body, status=status, content_type="text/plain")
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response
