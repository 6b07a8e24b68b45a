"""How stored values read on a page: durations, ages, JSON. Shared by the admin and the dashboard.

Everything here returns plain text; templates escape it, so what a step or a user wrote
(metadata, results, logs, errors) is always shown as text and never as markup. JSON is
shown with secrets masked (orbit/core/redaction.py): whatever a page shows goes through here.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from orbit.core.redaction import redact


def pretty_json(value: Any) -> str:
    """Indented JSON for a <pre> block, secrets masked; what JSON cannot encode shows as repr()."""
    if value is None:
        return ""
    value = redact(value)
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=repr)
    except (TypeError, ValueError):
        return repr(value)


def format_duration(seconds: float | None) -> str:
    """`850 ms`, `4.2 s`, `3 min 20 s`, `2 h 5 min`; an empty string when unknown."""
    if seconds is None:
        return ""
    if seconds < 0:
        seconds = 0.0
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, rest = divmod(round(seconds), 3600)
    minutes = rest // 60
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def format_age(when: datetime | None, now: datetime) -> str:
    """How long ago `when` was, as `12 s ago`; an empty string when unknown."""
    if when is None:
        return ""
    return f"{format_duration((now - when).total_seconds())} ago"


def format_percent(ratio: float | None) -> str:
    """`97.5%`, or an em dash when there is nothing to divide."""
    if ratio is None:
        return "—"
    return f"{ratio * 100:.1f}%"


def span_seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max((end - start).total_seconds(), 0.0)


#: How many hex digits of an id a list shows.
SHORT_ID_DIGITS = 8


def short_id(value: Any) -> str:
    """The last 8 hex digits of an id, the part that tells runs apart on a page.

    Run ids are time-ordered (orbit/core/ids.py): their first 12 digits are the creation
    time in milliseconds, so every run of the same minute begins alike. Their end is
    random. The runs page and the API find a run by this fragment (runs/search.py)."""
    return str(value).replace("-", "")[-SHORT_ID_DIGITS:]


def seconds(delta: timedelta | None) -> float | None:
    return delta.total_seconds() if delta is not None else None
