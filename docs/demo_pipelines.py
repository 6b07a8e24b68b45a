"""Pipelines for the documentation's screenshots (docs/screenshots.py): realistic names,
short sleeps, some flaky steps, loaded through ORBIT_PIPELINE_MODULES=demo_pipelines."""

from __future__ import annotations

import random
import time
from typing import Any

from pipelines import Backoff, Pipeline, StepContext, step

QUICK = Backoff(base=1.5, factor=2, cap=4, jitter=False)


def _work(ctx: StepContext, low: float, high: float) -> float:
    seconds = random.uniform(low, high) * float(ctx.metadata.get("speed", 1.0))
    time.sleep(seconds)
    return round(seconds, 3)


def fetch(ctx: StepContext) -> dict[str, Any]:
    ctx.log.info("fetching %s", ctx.metadata.get("source", "s3://reports/daily.csv"))
    return {"rows": random.randint(900, 1200), "took": _work(ctx, 0.2, 0.8)}


def transform(ctx: StepContext) -> dict[str, Any]:
    rows = ctx.prev_results["fetch"]["rows"]
    ctx.log.info("transforming %s rows", rows, extra={"rows": rows})
    if ctx.attempt == 1 and ctx.metadata.get("flaky"):
        _work(ctx, 0.3, 0.6)
        raise ConnectionError("warehouse connection reset by peer")
    return {"rows": rows, "took": _work(ctx, 0.4, 1.2)}


def publish(ctx: StepContext) -> dict[str, Any]:
    if ctx.metadata.get("broken"):
        _work(ctx, 0.1, 0.3)
        raise PermissionError("403 Forbidden: the report bucket refused the upload")
    ctx.log.info("published to %s", ctx.metadata.get("target", "reports/latest"))
    return {"url": "https://reports.example.com/latest", "took": _work(ctx, 0.1, 0.4)}


def resize(ctx: StepContext) -> dict[str, Any]:
    return {"sizes": [64, 256, 1024], "took": _work(ctx, 0.1, 0.5)}


def notify(ctx: StepContext) -> dict[str, Any]:
    ctx.log.info("notified %s", ctx.metadata.get("channel", "#ops"))
    return {"sent": True, "took": _work(ctx, 0.05, 0.2)}


def long_export(ctx: StepContext) -> dict[str, Any]:
    ctx.log.info("exporting the ledger; this takes a while")
    return {"took": _work(ctx, 20, 25)}


nightly_report = Pipeline(
    "nightly-report",
    description="Fetch yesterday's sales, aggregate them in the warehouse, publish the report.",
    schedule="0 3 * * *",
    steps=[
        step("fetch", fetch, max_retries=2, timeout=60, backoff=QUICK),
        step("transform", transform, max_retries=3, timeout=120, backoff=QUICK),
        step("publish", publish, max_retries=1, timeout=30, backoff=QUICK),
        step("notify", notify),
    ],
)
thumbnails = Pipeline(
    "image-thumbnails",
    description="Resize uploaded images into three thumbnail sizes.",
    steps=[step("resize", resize, max_retries=2, timeout=30), step("notify", notify)],
)
ledger_export = Pipeline(
    "ledger-export",
    description="Export the ledger to the accounting system.",
    schedule="*/30 * * * *",
    steps=[step("export", long_export, timeout=300), step("notify", notify)],
)
