"""Log lines (orbit/logs.py): one record, one line, whatever the record holds."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest
from django.test import RequestFactory
from hypothesis import given
from hypothesis import strategies as st

from orbit.core.logs import (
    JsonFormatter,
    TextFormatter,
    masked_text_fields,
    plain_text_fields,
    record_fields,
    text_time,
)

FORGED = "x\n2026-01-01 00:00:00.000 INFO    orbit.auth: admin logged in"


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("runs.execution", logging.INFO, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    return made


def test_a_newline_in_a_message_argument_cannot_forge_a_line() -> None:
    line = TextFormatter().format(record("Run created with %s", FORGED))
    assert "\n" not in line
    assert "x\\n2026-01-01 00:00:00.000 INFO    orbit.auth: admin logged in" in line


def test_a_newline_in_a_field_cannot_forge_a_line() -> None:
    line = TextFormatter().format(record("Run created", pipeline=FORGED, run_id="r1"))
    assert "\n" not in line
    assert line.endswith(
        "pipeline=x\\n2026-01-01 00:00:00.000 INFO    orbit.auth: admin logged in run_id=r1"
    )


@pytest.mark.parametrize("text", ["\x1b[2J", "\r", "\x00", "\u202e", "\x85"])
def test_other_control_characters_are_escaped(text: str) -> None:
    line = TextFormatter().format(record("got %s", text))
    assert text not in line
    assert line.endswith("got " + text.encode("unicode_escape").decode())


def test_a_traceback_keeps_its_lines_but_each_is_indented() -> None:
    """Every line after a record's first starts with spaces, so a line at column 0 always
    starts a record, even when an exception's message holds a newline."""
    try:
        raise ValueError(FORGED)
    except ValueError:
        import sys

        made = logging.LogRecord(
            "runs.execution", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    lines = TextFormatter().format(made).splitlines()
    assert lines[0].endswith("failed")
    assert len(lines) > 3
    assert all(line.startswith("    ") for line in lines[1:])
    assert "    2026-01-01 00:00:00.000 INFO    orbit.auth: admin logged in" in lines


def test_json_lines_stay_one_line_and_keep_the_text() -> None:
    line = JsonFormatter().format(record("Run created with %s", FORGED, pipeline=FORGED))
    assert "\n" not in line
    data = json.loads(line)
    assert data["message"] == f"Run created with {FORGED}"
    assert data["pipeline"] == FORGED


@given(st.floats(min_value=0, max_value=4e9) | st.integers(0, 4 * 10**12).map(lambda ms: ms / 1000))
def test_a_text_line_reads_its_time_as_datetime_does(created: float) -> None:
    """The text format's time (formatted once a second, milliseconds added) reads as
    datetime.fromtimestamp writes it, rounding included, whatever second came before."""
    expected = datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    assert text_time(created) == expected
    assert TextFormatter().format(record("x", created=created)).startswith(expected + " INFO")


SEARCH = {"metadata.api_key": "sk-QS-SECRET1", "metadata.dsn": "postgres://u:QS-SECRET3@h/x"}


def request_as_typed() -> object:
    return RequestFactory().get("/api/runs?" + "&".join(f"{k}={v}" for k, v in SEARCH.items()))


def request_percent_encoded() -> object:
    return RequestFactory().get("/api/runs", SEARCH)  # as HTTP clients send a query


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()])
@pytest.mark.parametrize(
    "value",
    [
        # django.request's records carry the request, whose repr holds the query string
        pytest.param(request_as_typed, id="request"),
        pytest.param(request_percent_encoded, id="request-percent-encoded"),
        # any object is shown by its text
        pytest.param(
            lambda: ValueError("token=sk-QS-SECRET2 at postgres://u:QS-SECRET3@h/x"),
            id="exception",
        ),
        # a string within a field's structure is free text too
        pytest.param(
            lambda: {"search": ["api_key=sk-QS-SECRET1", "postgres://u:QS-SECRET3@h/x"]},
            id="nested-string",
        ),
    ],
)
def test_a_field_s_text_is_masked_whatever_its_type(formatter, value) -> None:
    line = formatter.format(record("Bad Request: /api/runs", status_code=400, request=value()))
    assert "QS-SECRET" not in line
    assert "[redacted]" in line


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()], ids=["text", "json"])
def test_a_field_nested_too_deeply_to_walk_is_shown_as_such_and_the_others_kept(
    formatter,
) -> None:
    from orbit.core.redaction import TOO_DEEP

    deep: object = "api_key=sk-DEEP-SECRET"
    for _ in range(5_000):
        deep = {"next": deep}
    line = formatter.format(
        record("Run created", deep=deep, run_id="r1", db_password="hunter2", note="token=t0p")
    )
    assert "DEEP-SECRET" not in line and "hunter2" not in line and "t0p" not in line
    assert TOO_DEEP in line and "r1" in line and "[redacted]" in line


def test_a_json_line_shows_a_field_whose_repr_fails_as_such() -> None:
    class Unshowable:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    data = json.loads(JsonFormatter().format(record("Run created", odd=Unshowable(), n=3)))
    assert (data["odd"], data["n"]) == ("<Unshowable whose repr failed>", 3)


def finished_line_record() -> logging.LogRecord:
    """A record as the worker's one line per successful run has it (runs/execution.py)."""
    run_id = "0d1c6a52-6f0b-4f7c-9a8e-3b1d2c4e5f60"
    return record(
        "Run %s of %s %s in %.3fs",
        run_id,
        "bench-noop",
        "succeeded",
        0.0123,
        event="run_finished",
        run_id=run_id,
        status="succeeded",
        duration=0.0123,
    )


def test_the_worker_s_line_per_run_takes_the_plain_way() -> None:
    made = finished_line_record()
    assert plain_text_fields(made) == (
        "event=run_finished run_id=0d1c6a52-6f0b-4f7c-9a8e-3b1d2c4e5f60 status=succeeded "
        "duration=0.0123"
    )
    assert TextFormatter().format(made).endswith(plain_text_fields(made))


@pytest.mark.parametrize(
    "fields",
    [
        {"note": "token=abc123"},  # a key=value in free text is masked
        {"dsn": "postgres://u:pw@h/x"},  # a URL's password is masked
        {"note": "a\nb"},  # a newline is escaped
        {"run": {"id": 1}},  # a structure is walked
        {"a\nb": "x"},  # a name that is not printable is escaped
    ],
)
def test_a_field_that_is_not_plain_takes_the_general_way(fields) -> None:
    assert plain_text_fields(record("x", **fields)) is None


#: Names and values as fields have them, secret and plain, and some that are neither.
FIELD_NAMES = st.sampled_from(
    ["event", "run_id", "api_key", "db_password", "Set-Cookie", "privateKey", "x y", "a\nb"]
) | st.text(max_size=12)
FIELD_VALUES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(
        [
            "run_finished",
            "token=abc",
            "Bearer abc.def",
            "postgres://u:pw@h/x",
            "\x1b[2J",
            "[redacted]",
        ]
    )
    | st.lists(st.text(max_size=5), max_size=3)
    | st.lists(st.integers(0, 9), max_size=2).map(tuple)  # "(1,)" is plain; shown as "[1]"
)


@given(st.dictionaries(FIELD_NAMES, FIELD_VALUES, max_size=6))
def test_the_plain_way_shows_fields_as_the_general_way_does(fields) -> None:
    """Whatever the fields, the plain way either declines (None) or writes exactly what
    the general way (masked whole, then each masked as free text and escaped) writes."""
    made = record("x")
    made.__dict__.update({k: v for k, v in fields.items() if k not in made.__dict__})
    plain = plain_text_fields(made)
    assert plain is None or plain == masked_text_fields(made)
    if not record_fields(made):
        assert plain == ""
