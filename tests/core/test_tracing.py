"""Tracing is off unless OTEL_TRACES_EXPORTER turns it on; a switch that asks for what
is not installed stops startup with a message naming it; Orbit runs without the
`otel` extra; and log records written under a span carry its ids (orbit/core/tracing.py,
orbit/core/logs.py)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from orbit.core import tracing
from orbit.core.logs import JsonFormatter, TextFormatter, TraceIds
from tests.processes import ROOT, database_env


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({}, []),  # nothing set: off
        ({"OTEL_TRACES_EXPORTER": "none"}, []),  # the standard "off"
        ({"OTEL_TRACES_EXPORTER": ""}, []),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        ({"OTEL_TRACES_EXPORTER": "otlp, console"}, ["otlp", "console"]),
        # the SDK's own kill switch wins over any exporter
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "TRUE"}, []),
        # an endpoint alone does not turn tracing on: the exporter is the switch
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, []),
    ],
)
def test_the_exporter_variable_is_the_switch(environ, names):
    assert tracing.exporter_names(environ) == names


def test_configure_with_tracing_off_turns_nothing_on():
    tracing.configure({"OTEL_SERVICE_NAME": "orbit"})
    assert not tracing.enabled()


def test_an_exporter_no_package_provides_stops_startup_naming_it():
    with pytest.raises(ImproperlyConfigured) as raised:
        tracing.configure({"OTEL_TRACES_EXPORTER": "carrier-pigeon"})
    assert str(raised.value) == (
        "OTEL_TRACES_EXPORTER names 'carrier-pigeon', which no installed package provides "
        "(installed: console; `otlp` comes with opentelemetry-exporter-otlp)"
    )
    assert not tracing.enabled()


def test_tracing_asked_for_without_the_sdk_stops_startup_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace.export", None)  # not installed
    with pytest.raises(ImproperlyConfigured) as raised:
        tracing.configure({"OTEL_TRACES_EXPORTER": "console"})
    assert str(raised.value) == (
        "OTEL_TRACES_EXPORTER is set, but OpenTelemetry is not installed: "
        "pip install 'orbit[otel]' (or unset OTEL_TRACES_EXPORTER)"
    )


#: Runs Orbit in a process where no `opentelemetry` module can be imported.
WITHOUT_OTEL = """
import sys

class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "opentelemetry":
            raise ModuleNotFoundError(f"No module named {name!r}")

sys.meta_path.insert(0, NotInstalled())
sys.modules.pop("opentelemetry", None)
import django
django.setup()
from django.test import Client
import runs.worker, runs.foreground, runs.tracing, orbit.web.tracing
print(Client().get("/healthz", HTTP_HOST="localhost").status_code)
"""


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("exporter", "expected"),
    [
        ("", "200"),  # off: Orbit starts and serves without the extra
        ("console", "pip install 'orbit[otel]'"),  # on: a clear refusal, not a traceback deep down
    ],
)
def test_orbit_without_opentelemetry_installed(exporter, expected):
    env = {**database_env(), "DJANGO_SETTINGS_MODULE": "orbit.settings"}
    env.pop("OTEL_TRACES_EXPORTER", None)
    if exporter:
        env["OTEL_TRACES_EXPORTER"] = exporter
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_OTEL], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert expected in done.stdout + done.stderr, done.stderr
    assert (done.returncode == 0) is (not exporter)


def record() -> logging.LogRecord:
    return logging.makeLogRecord(
        {"name": "runs.test", "levelname": "INFO", "msg": "hello", "event": "greeted"}
    )


def test_a_record_written_under_a_span_carries_its_ids_in_both_formats(spans):
    span = tracing.start_span("work")
    with tracing.using(span):
        inside = record()
        TraceIds().filter(inside)
    tracing.end_span(span)
    context = span.get_span_context()
    trace_id, span_id = f"{context.trace_id:032x}", f"{context.span_id:016x}"
    data = json.loads(JsonFormatter().format(inside))
    assert (data["trace_id"], data["span_id"]) == (trace_id, span_id)
    assert f"trace_id={trace_id} span_id={span_id}" in TextFormatter().format(inside)

    outside = record()
    TraceIds().filter(outside)
    assert "trace_id" not in json.loads(JsonFormatter().format(outside))


def test_without_tracing_records_carry_no_ids():
    assert not tracing.enabled()
    plain = record()
    assert TraceIds().filter(plain) is True
    assert "trace_id" not in json.loads(JsonFormatter().format(plain))
