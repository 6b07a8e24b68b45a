"""docs/alerts.yml: promtool accepts it, and each rule's expression, evaluated by
promtool over a live /metrics scrape of runs that really failed, were quarantined and
wait, fires on what it should and on nothing else."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml  # installed with the dev extra (schemathesis)
from django.db.models.functions import Now
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from runs import enqueue
from runs.models import Run
from runs.recovery import recover_interrupted
from tests.factories import WorkerFactory
from tests.runs.test_recovery import interrupt
from tests.runs.workers import burst

RULES = Path(__file__).resolve().parents[2] / "docs" / "alerts.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed (Debian: apt-get install prometheus; CI installs it)",
)
TOKEN = "prometheus-scrape-token"
#: The scrape is the last of an hour of samples, one a minute.
MINUTES = 60


@needs_promtool
def test_promtool_accepts_the_rules():
    assert PROMTOOL is not None
    checked = subprocess.run(
        [PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 7 rules found" in checked.stdout


def _series(name: str, labels: dict[str, str]) -> str:
    if not labels:
        return name
    escaped = (
        f'{key}="{value.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for key, value in sorted(labels.items())
    )
    return f"{name}{{{','.join(escaped)}}}"


def input_series(exposition: str) -> list[dict[str, str]]:
    """The scrape as an hour of promtool input: gauges hold their value throughout;
    counters and histograms grow steadily from zero to the scraped value."""
    found = []
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            value = float(sample.value)
            if family.type in ("counter", "histogram"):
                values = f"0+{value / MINUTES}x{MINUTES}"
            else:
                values = f"{value}x{MINUTES}"
            found.append({"series": _series(sample.name, sample.labels), "values": values})
    return found


def expected(alert: str, labels: dict[str, str]) -> dict[str, Any]:
    """What promtool should report for `alert` with `labels`: its rule's labels too, and
    its annotations with those labels filled in."""
    [rule] = [
        r
        for g in yaml.safe_load(RULES.read_text())["groups"]
        for r in g["rules"]
        if r["alert"] == alert
    ]
    every = {**rule.get("labels", {}), **labels}

    def fill(text: str) -> str:
        return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: every[m.group(1)], text)

    return {
        "exp_labels": every,
        "exp_annotations": {k: fill(v) for k, v in rule.get("annotations", {}).items()},
    }


@needs_promtool
@pytest.mark.django_db(transaction=True)
def test_each_rule_evaluated_over_a_live_scrape(test_pipelines, settings, tmp_path):
    assert PROMTOOL is not None
    settings.ORBIT_METRICS_TOKEN = TOKEN
    settings.ORBIT_MAX_INTERRUPTIONS = 0  # the first interruption quarantines
    # Eight runs fail (no retries: four in the last half hour of the series), two succeed: a worker really runs them, then stops.
    for _ in range(8):
        enqueue("t-permanent")
    for _ in range(2):
        enqueue("t-single")
    burst()
    assert Run.objects.filter(status="failed").count() == 8
    # One run kills its worker and is quarantined; another's worker just died.
    interrupt(enqueue("t-three"))
    assert len(recover_interrupted(auto_resume=True).quarantined) == 1
    interrupt(enqueue("t-three"))
    # A run has been due for an hour; a worker went silent an hour ago.
    late = enqueue("t-single")
    Run.objects.filter(id=late.id).update(available_at=Now() - timedelta(hours=1))
    WorkerFactory(state="running", last_heartbeat=timezone.now() - timedelta(hours=1))

    scrape = Client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert scrape.status_code == 200
    series = input_series(scrape.content.decode())
    names = {s["series"] for s in series}
    assert 'orbit_pipeline_runs_finished_total{pipeline="t-permanent",status="failed"}' in names
    assert "orbit_runs_quarantined_total" in names

    fired = {
        "OrbitPipelineFailureRateHigh": [
            expected("OrbitPipelineFailureRateHigh", {"pipeline": "t-permanent"})
        ],
        "OrbitQueueLate": [expected("OrbitQueueLate", {})],
        "OrbitRunsInterrupted": [expected("OrbitRunsInterrupted", {})],
        "OrbitNoLiveWorkers": [expected("OrbitNoLiveWorkers", {})],
        "OrbitWorkerDied": [expected("OrbitWorkerDied", {"state": "dead"})],
        "OrbitRunQuarantined": [expected("OrbitRunQuarantined", {})],
        "OrbitMetricsAbsent": [],  # the scrape is there
    }
    rules = [r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    assert sorted(fired) == sorted(rules)  # every rule is evaluated
    unit = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": f"{MINUTES}m", "alertname": name, "exp_alerts": alerts}
                    for name, alerts in fired.items()
                ],
            }
        ],
    }
    path = tmp_path / "alerts_test.yml"
    path.write_text(json.dumps(unit, indent=1))  # JSON is YAML
    tested = subprocess.run(
        [PROMTOOL, "test", "rules", str(path)], capture_output=True, text=True, timeout=120
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
