"""Finding runs: by a fragment of the id, by metadata key and value, by creation time.

The API (`GET /api/runs?q=...&metadata.customer=acme&created_after=...`), the dashboard's
runs page and the admin all read their filters through `parse_run_query` and filter with
`run_condition`, so they accept, refuse and find the same runs.

Cost at a million runs, and why each condition is shaped as it is:
- A fragment the id begins with is a range on the primary key (index), over every run.
  Any other fragment (lists show the id's random tail, see `short_id`) is matched as text
  among the newest `ID_SEARCH_WINDOW` runs only: a text match cannot use the key's index,
  and an unbounded one would read the whole table. An older run is found by its whole id
  or the start of it.
- Metadata `key=value` pairs are JSON containment (`metadata @> '{"key": "value"}'`) on
  PostgreSQL, served by the GIN index `run_metadata_gin` (jsonb_path_ops, migration 0014);
  on SQLite a JSON key lookup.
- Creation time bounds use the (created_at, id) indexes the lists already order by;
  finish time bounds (the overview's bars link to them) the partial run_finished_idx.

Secrets: a key whose value redaction masks (orbit/core/redaction.py) cannot be searched,
and neither can a value holding a URL password, because an exact match answers whether a
guess is right: the masked value would be learnable one query at a time.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

from django.db.models import CharField, JSONField, Q, Value
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import Cast, Replace
from django.db.models.lookups import Contains
from django.utils.dateparse import parse_date, parse_datetime

from orbit.core.clock import in_utc
from orbit.core.exceptions import InvalidRunQuery
from orbit.core.redaction import is_secret_key, mask_url_passwords
from orbit.core.text import printable
from runs.models import Run
from runs.store import store

#: How many of the newest runs a fragment from the middle or end of an id is looked for in.
ID_SEARCH_WINDOW = 100_000
#: The most runs an id fragment finds by each way (its start; anywhere among the newest).
MAX_ID_MATCHES = 200
#: The query-string prefix of a metadata filter: `metadata.customer=acme`.
METADATA_PREFIX = "metadata."
MAX_METADATA_FILTERS = 5
MAX_KEY_LENGTH = 100
MAX_VALUE_LENGTH = 200
MAX_FRAGMENT_LENGTH = 36  # a whole id with its hyphens

_HEX = re.compile(r"[0-9a-f]{1,32}")
_JSON_SCALAR = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?|true|false|null")


@dataclass(frozen=True)
class RunQuery:
    """What to look for; empty fields do not filter."""

    id_fragment: str = ""  # lower-case hex digits, no hyphens
    metadata: tuple[tuple[str, str], ...] = field(default=())
    created_after: datetime | None = None
    created_before: datetime | None = None
    finished_after: datetime | None = None  # what the overview's bars link to
    finished_before: datetime | None = None


def parse_run_query(params: Mapping[str, Any]) -> RunQuery:
    """The search in a query string (`q` or `id`, `metadata.KEY`, `created_after`,
    `created_before`, `finished_after`, `finished_before`); InvalidRunQuery (400) says
    what is wrong with the first bad one."""
    fragment = _fragment(_text(params, "q") or _text(params, "id"))
    pairs = []
    for name in params:
        if isinstance(name, str) and name.startswith(METADATA_PREFIX):
            pairs.append(_metadata_pair(name[len(METADATA_PREFIX) :], _text(params, name)))
    if len(pairs) > MAX_METADATA_FILTERS:
        raise InvalidRunQuery(f"At most {MAX_METADATA_FILTERS} metadata filters at once")
    return RunQuery(
        id_fragment=fragment,
        metadata=tuple(pairs),
        created_after=_moment(params, "created_after"),
        created_before=_moment(params, "created_before", end_of_day=True),
        finished_after=_moment(params, "finished_after"),
        finished_before=_moment(params, "finished_before", end_of_day=True),
    )


def run_condition(query: RunQuery) -> Q:
    """The rows `query` finds, as a condition on Run."""
    condition = Q()
    if query.id_fragment:
        condition &= _id_condition(query.id_fragment)
    for key, value in query.metadata:
        condition &= _metadata_condition(key, value)
    if query.created_after is not None:
        condition &= Q(created_at__gte=query.created_after)
    if query.created_before is not None:
        condition &= Q(created_at__lte=query.created_before)
    if query.finished_after is not None:
        condition &= Q(finished_at__gte=query.finished_after)
    if query.finished_before is not None:
        condition &= Q(finished_at__lte=query.finished_before)
    return condition


def _text(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name)
    if value is None:
        return ""
    text = str(value)
    if not text.isprintable():
        raise InvalidRunQuery(f"{name} holds a control character: {printable(text)[:80]}")
    return text.strip()


def _fragment(text: str) -> str:
    if not text:
        return ""
    if len(text) > MAX_FRAGMENT_LENGTH:
        raise InvalidRunQuery(
            f"A run id has {MAX_FRAGMENT_LENGTH} characters; this has {len(text)}"
        )
    digits = text.lower().replace("-", "")
    if not _HEX.fullmatch(digits):
        raise InvalidRunQuery(
            f"Not part of a run id: {text!r}. Search takes hex digits (0-9, a-f) of a run id"
        )
    return digits


def _metadata_pair(key: str, value: str) -> tuple[str, str]:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidRunQuery(
            f"A metadata filter reads metadata.KEY=VALUE, with a key of 1 to {MAX_KEY_LENGTH} "
            f"printable characters: {printable(key)[:120]!r}"
        )
    if is_secret_key(key):
        raise InvalidRunQuery(
            f"Metadata key {key!r} is masked (ORBIT_REDACT_KEYS): runs cannot be searched by it"
        )
    if len(value) > MAX_VALUE_LENGTH:
        raise InvalidRunQuery(f"metadata.{key} is longer than {MAX_VALUE_LENGTH} characters")
    if mask_url_passwords(value) != value:
        raise InvalidRunQuery(f"metadata.{key}: a URL with a password cannot be searched")
    return key, value


def _moment(params: Mapping[str, Any], name: str, *, end_of_day: bool = False) -> datetime | None:
    """An ISO 8601 date-time (naive: in TIME_ZONE) or a date (its start, or its end for
    `created_before`)."""
    text = _text(params, name)
    if not text:
        return None
    moment: datetime | None
    try:
        # A date first: parse_datetime would read `2026-05-01` as its midnight.
        day = parse_date(text)
        if day is not None:
            moment = datetime.combine(day, time.max if end_of_day else time.min)
        else:
            moment = parse_datetime(text)
    except ValueError:
        moment = None
    if moment is None:
        raise InvalidRunQuery(
            f"{name} is not a date or date-time: {printable(text)[:60]!r} "
            "(use ISO 8601, such as 2026-05-01 or 2026-05-01T08:30:00Z)"
        )
    utc = in_utc(moment)
    if utc is None:
        raise InvalidRunQuery(
            f"{name} is out of range: {printable(text)[:60]!r} "
            "(date-times run from 0001-01-01 to 9999-12-31 in UTC)"
        )
    return utc


def _id_condition(digits: str) -> Q:
    """The runs whose id holds `digits`, found first (newest first, at most
    MAX_ID_MATCHES of each kind) and then named by id.

    Found apart from the page's other conditions on purpose: joined to a list ordered by
    creation time, a condition that one run in a million meets lets PostgreSQL walk the
    creation-time index hoping for an early match, and read the whole table (measured:
    0.9 s at a million runs, against a few ms this way)."""
    low = uuid.UUID(digits.ljust(32, "0"))
    high = uuid.UUID(digits.ljust(32, "f"))
    newest_first = Run.objects.order_by("-id").values_list("id", flat=True)
    ids = list(newest_first.filter(id__gte=low, id__lte=high)[:MAX_ID_MATCHES])
    if len(digits) < 32:
        # The id of the ID_SEARCH_WINDOW-th newest run (ids grow with time), or the least id.
        oldest = newest_first[ID_SEARCH_WINDOW - 1 : ID_SEARCH_WINDOW].first()
        as_text = Replace(Cast("id", CharField()), Value("-"), Value(""))  # hex digits only
        inside = newest_first.filter(Contains(as_text, digits))
        if oldest is not None:
            inside = inside.filter(id__gte=oldest)
        ids += list(inside[:MAX_ID_MATCHES])
    return Q(id__in=ids)


def _metadata_condition(key: str, value: str) -> Q:
    """The value as a string, or as the JSON number, true, false or null it spells."""
    condition = Q()
    for each in (value, *_json_scalar(value)):
        if store().features.json_containment:
            condition |= Q(metadata__contains={key: each})
        else:
            # A key transform's own `exact` (compares JSON), built directly so that a key
            # holding `__` is one key, not a path.
            under_key = KeyTransform(key, "metadata")
            exact: Any = under_key.get_lookup("exact")
            condition |= Q(exact(under_key, Value(each, output_field=JSONField())))
    return condition


def _json_scalar(value: str) -> tuple[Any, ...]:
    """The JSON number, true, false or null `value` spells, if any. A number too large for
    a float (`1e999`) reads as infinity, which neither database takes as JSON: such a value
    is searched as text alone, as `NaN` and `Infinity` are (the pattern does not match them)."""
    if not _JSON_SCALAR.fullmatch(value):
        return ()
    scalar = json.loads(value)
    if isinstance(scalar, float) and not math.isfinite(scalar):
        return ()
    return (scalar,)
