"""Log formatting: readable lines by default, JSON lines with ORBIT_LOG_FORMAT=json.

Lifecycle events carry `extra={"event": ..., "run_id": ..., "step": ...}`; both formats
show those fields so logs can be searched by event name and run id. Both mask secrets
(orbit/core/redaction.py) in the fields and the message, so metadata or results that reach a log
line do not leak through it: the values of secret keys, and then the text each field is
shown as, whatever its type (Django's `django.request` records carry the request, whose
repr holds the query string: `?metadata.api_key=...`). While tracing (docs/TRACING.md), a
record written under a span carries `trace_id` and `span_id` (`TraceIds`), shown as fields
by both formats.

A text record is one line: control characters in the message and fields (a newline in
metadata, a terminal escape code) are written as escapes (orbit.core.text.printable), so no
value can forge a line or drive a terminal. A traceback keeps its lines, each indented,
so a line that starts at column 0 always starts a record. JSON lines escape by nature.
"""

from __future__ import annotations

import json
import logging
import math
import time
from datetime import UTC, datetime
from typing import Any

from orbit.core import tracing
from orbit.core.conf import orbit_settings
from orbit.core.redaction import (
    MASK,
    TOO_DEEP,
    is_plain,
    is_secret_key,
    redact,
    redact_text,
)
from orbit.core.text import printable

#: What each line of a traceback starts with in a text log.
TRACE_INDENT = "    "

# Attributes every LogRecord has; anything else came in through `extra=`.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a caller attached with `extra=`."""
    return {
        k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
    }


class TraceIds(logging.Filter):
    """Adds the current span's `trace_id` and `span_id` (hex, as trace back ends show
    them) to a record, so a log line can be found from its trace and back. One flag test
    while tracing is off."""

    def filter(self, record: logging.LogRecord) -> bool:
        if tracing.enabled() and not hasattr(record, "trace_id"):
            ids = tracing.current_ids()
            if ids is not None:
                record.trace_id, record.span_id = ids
        return True


#: The last second `text_time` formatted, and how it reads.
_second: tuple[int, str] = (-1, "")


def text_time(created: float) -> str:
    """A record's time as a text line shows it, UTC to the millisecond
    (`2026-12-04 14:40:58.123`). The date and time are formatted once a second: a worker
    writes a line per run at INFO, and strftime was a tenth of each line's cost."""
    global _second
    fraction, seconds = math.modf(created)  # rounded as datetime.fromtimestamp rounds
    whole, micros = int(seconds), round(fraction * 1_000_000)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    second = _second
    if second[0] != whole:
        second = _second = (whole, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(whole)))
    return f"{second[1]}.{micros // 1000:03d}"


def as_json_field(value: Any) -> Any:
    """A log record's field as a JSON document holds it: `value` itself when JSON can
    encode it, else its repr; one nested too deeply to encode, or whose repr fails, says
    so (either raised out of the formatter, or out of a step's handler, losing the record).
    The JSON log line and a step's stored records (runs/child.py) both show fields so."""
    try:
        json.dumps(value)
    except RecursionError:
        return TOO_DEEP
    except (TypeError, ValueError):
        try:
            return repr(value)
        except RecursionError:
            return TOO_DEEP
        except Exception:  # an object's own __repr__ may raise anything
            return f"<{type(value).__name__} whose repr failed>"
    return value


def _jsonable(value: Any) -> Any:
    """`value` (its strings masked already) as a JSON line holds it: as it is if JSON can,
    else its repr, masked as free text."""
    shown = as_json_field(value)
    return value if shown is value else redact_text(shown)


def masked_fields(record: logging.LogRecord, *, free_text: bool = False) -> dict[str, Any]:
    """The record's `extra` fields, masked (`redact`). Masked whole, one walk a line; when
    one field is nested too deeply to walk, each is masked on its own, so that field alone
    shows as too deep and the others are kept (masked whole, the line had no fields left
    and both formatters failed on it)."""
    fields = record_fields(record)
    masked = redact(fields, free_text=free_text)
    if isinstance(masked, dict):
        return masked
    return {
        k: MASK if is_secret_key(k) else redact(v, free_text=free_text) for k, v in fields.items()
    }


def _text_field(value: Any) -> str:
    """`value` as a text line shows it: its text, masked as free text is, on one line."""
    return printable(redact_text(str(value)))


def text_fields(record: logging.LogRecord) -> str:
    """The record's `extra` fields as a text line shows them: `key=value ...`, masked."""
    fields = plain_text_fields(record)
    return masked_text_fields(record) if fields is None else fields


def masked_text_fields(record: logging.LogRecord) -> str:
    """`text_fields` the general way, for any field: each value masked (`masked_fields`),
    then its text masked as free text and escaped (`_text_field`)."""
    return " ".join(
        f"{printable(str(k))}={_text_field(v)}" for k, v in masked_fields(record).items()
    )


#: The types of the values `plain_text_fields` shows: exactly these, not their subclasses,
#: whose text may be anything.
_SCALARS = frozenset({str, int, float, bool, type(None)})


def plain_text_fields(record: logging.LogRecord) -> str | None:
    """`text_fields` when every field is a string, number, bool or None whose text is
    plain (orbit.core.redaction.is_plain) under a printable name, else None. Such a
    field's text is shown as it is, or masked whole when its name is secret, exactly as
    the general way shows it (tests/core/test_logs.py holds the two to the same line),
    without a walk of the fields and two masking passes over each: the worker's one line
    per run at INFO has only such fields (an event, a run id, a status, a duration), and
    formatting them the general way was a third of the line's cost."""
    fragments = orbit_settings.redact_keys
    shown = []
    for key, value in record.__dict__.items():
        if type(key) is not str:
            return None
        if key in _STANDARD or key.startswith("_"):
            continue
        if not key.isprintable():
            return None
        if is_secret_key(key, fragments):
            shown.append(f"{key}={MASK}")
            continue
        if type(value) not in _SCALARS:
            return None
        text = str(value)
        if not is_plain(text):
            return None
        shown.append(f"{key}={text}")
    return " ".join(shown)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = text_time(record.created)
        message = printable(redact_text(record.getMessage()))
        line = f"{when} {record.levelname:<7} {printable(record.name)}: {message}"
        fields = text_fields(record)
        if fields:
            line += " " + fields
        if record.exc_info:
            trace = redact_text(self.formatException(record.exc_info))
            line += "".join(f"\n{TRACE_INDENT}{printable(part)}" for part in trace.splitlines())
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": redact_text(record.getMessage()),
        }
        data.update({k: _jsonable(v) for k, v in masked_fields(record, free_text=True).items()})
        if record.exc_info:
            data["exc_info"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(data)
