"""Finding runs (runs/search.py): by any fragment of the id, by metadata key and value,
by creation time; and what cannot be searched, so that masked values stay unknown."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from orbit.core.exceptions import InvalidRunQuery
from runs import search
from runs.models import Run
from runs.search import parse_run_query, run_condition
from tests.factories import PipelineFactory, RunFactory

pytestmark = pytest.mark.django_db


def found(**params: str) -> set[uuid.UUID]:
    return set(
        Run.objects.filter(run_condition(parse_run_query(params))).values_list("id", flat=True)
    )


@pytest.fixture
def pipeline():
    return PipelineFactory(name="search-me")


def test_any_unique_fragment_of_an_id_finds_its_run_and_no_other(pipeline):
    runs = [RunFactory(pipeline=pipeline) for _ in range(5)]
    for run in runs:
        text = str(run.id)
        # The first 8 digits are shared by runs of the same minute; these are not.
        for fragment in (text, text.replace("-", ""), text[-8:], text[14:23], text[:13].upper()):
            matches = found(q=fragment)
            assert run.id in matches, fragment
        assert found(q=text[-8:]) == {run.id}
        assert found(id=text[9:23]) == {run.id}


def test_the_start_of_an_id_finds_runs_older_than_the_window(pipeline, monkeypatch):
    # Two runs of the same millisecond are ordered by their random digits: sort them.
    old, new = sorted((RunFactory(pipeline=pipeline) for _ in range(2)), key=lambda r: r.id)
    monkeypatch.setattr(search, "ID_SEARCH_WINDOW", 1)  # only the newest run is scanned as text
    assert found(q=str(old.id)[-8:]) == set()
    assert found(q=str(new.id)[-8:]) == {new.id}
    assert found(q=str(old.id)[:18]) == {old.id}  # a prefix is a key range: any run


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"q": "not-hex!"}, "Not part of a run id"),
        ({"q": "a" * 37}, "A run id has 36 characters"),
        ({"q": "ab\x00cd"}, "control character"),
        ({"metadata.customer": "ac\x1bme"}, "control character"),
        ({"metadata.": "x"}, "metadata.KEY=VALUE"),
        ({"metadata." + "k" * 101: "x"}, "metadata.KEY=VALUE"),
        ({"metadata.customer": "x" * 201}, "longer than 200"),
        ({"created_after": "yesterday"}, "created_after is not a date"),
        ({"created_before": "2026-13-45"}, "created_before is not a date"),
        ({f"metadata.k{i}": "v" for i in range(6)}, "At most 5 metadata filters"),
    ],
)
def test_bad_searches_say_what_is_wrong(params, message):
    with pytest.raises(InvalidRunQuery, match=message):
        parse_run_query(params)


@pytest.mark.parametrize("key", ["api_key", "password", "X-Api-Key", "dbPassword", "token"])
def test_keys_redaction_masks_cannot_be_searched(key):
    with pytest.raises(InvalidRunQuery, match=f"Metadata key '{key}' is masked"):
        parse_run_query({f"metadata.{key}": "sk-live-1"})


def test_a_url_password_cannot_be_confirmed_by_a_search(pipeline):
    RunFactory(pipeline=pipeline, metadata={"source": "postgres://u:hunter2@db/x"})
    with pytest.raises(InvalidRunQuery, match="URL with a password"):
        parse_run_query({"metadata.source": "postgres://u:hunter2@db/x"})


def test_a_secret_nested_under_a_plain_key_is_never_matched(pipeline):
    RunFactory(pipeline=pipeline, metadata={"config": {"password": "hunter2"}})
    assert found(**{"metadata.config": "hunter2"}) == set()
    assert found(**{"metadata.config": '{"password": "hunter2"}'}) == set()


def test_metadata_key_and_value_find_the_runs_that_hold_them(pipeline):
    acme = RunFactory(pipeline=pipeline, metadata={"customer": "acme", "n": 3, "ok": True})
    other = RunFactory(pipeline=pipeline, metadata={"customer": "globex", "n": "3"})
    RunFactory(pipeline=pipeline, metadata={"client": "acme"})
    odd = RunFactory(pipeline=pipeline, metadata={"a__b": "x", "a": {"b": "y"}})
    assert found(**{"metadata.customer": "acme"}) == {acme.id}
    assert found(**{"metadata.n": "3"}) == {acme.id, other.id}  # the number and the string
    assert found(**{"metadata.ok": "true"}) == {acme.id}
    assert found(**{"metadata.customer": "acme", "metadata.n": "3"}) == {acme.id}
    assert found(**{"metadata.customer": "ac"}) == set()  # whole values only
    assert found(**{"metadata.a__b": "x"}) == {odd.id}  # one key, not a path
    assert found(**{"metadata.a__b": "y"}) == set()


def test_created_after_and_before_bound_the_creation_time(pipeline):
    now = timezone.now()
    old = RunFactory(pipeline=pipeline)
    Run.objects.filter(id=old.id).update(created_at=now - timedelta(days=3))
    new = RunFactory(pipeline=pipeline)
    Run.objects.filter(id=new.id).update(created_at=now - timedelta(hours=1))
    day_before = (now - timedelta(days=1)).isoformat()
    assert found(created_after=day_before) == {new.id}
    assert found(created_before=day_before) == {old.id}
    three_days_ago = timezone.localdate(now - timedelta(days=3)).isoformat()  # TIME_ZONE's
    assert old.id in found(created_before=three_days_ago)  # a date means its whole day
    assert found(created_after=now.isoformat()) == set()


@pytest.mark.postgres
def test_postgresql_finds_by_metadata_and_id_prefix_through_indexes(pipeline):
    from django.db import connection

    run = RunFactory(pipeline=pipeline, metadata={"customer": "acme"})
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table would be scanned
    by_metadata = Run.objects.filter(run_condition(parse_run_query({"metadata.customer": "acme"})))
    assert "run_metadata_gin" in by_metadata.explain()
    # An id fragment is looked up first, and the list then reads the runs by primary key.
    by_prefix = Run.objects.filter(run_condition(parse_run_query({"q": str(run.id)[:11]})))
    assert "runs_run_pkey" in by_prefix.explain()
    assert list(by_prefix) == [run]


@pytest.mark.parametrize(
    "value",
    [
        "1e999",  # a number JSON reads as infinity, which no database stores
        "-1e999",
        "1E+999",
        "NaN",  # JSON's non-standard spellings are text, never numbers
        "Infinity",
        "-Infinity",
        "9" * 200,  # a whole number too large for any float
    ],
)
def test_a_value_no_json_number_can_hold_is_searched_as_text(pipeline, value):
    run = RunFactory(pipeline=pipeline, metadata={"a": value})
    RunFactory(pipeline=pipeline, metadata={"a": "1"})
    assert found(**{"metadata.a": value}) == {run.id}


RANGE = "(date-times run from 0001-01-01 to 9999-12-31 in UTC)"


@pytest.mark.parametrize(
    ("params", "time_zone", "message"),
    [
        # later than the last moment a date-time holds in UTC, as the database compares it
        (
            {"created_after": "9999-12-31T23:59:59-05:00"},
            "UTC",
            f"created_after is out of range: '9999-12-31T23:59:59-05:00' {RANGE}",
        ),
        # earlier than the first
        (
            {"created_before": "0001-01-01T00:00:00+05:00"},
            "UTC",
            f"created_before is out of range: '0001-01-01T00:00:00+05:00' {RANGE}",
        ),
        # a date's end, in a TIME_ZONE behind UTC, is past the last moment
        (
            {"created_before": "9999-12-31"},
            "America/New_York",
            f"created_before is out of range: '9999-12-31' {RANGE}",
        ),
        # a date's start, in a TIME_ZONE ahead of UTC, is before the first
        (
            {"finished_after": "0001-01-01"},
            "Asia/Tokyo",
            f"finished_after is out of range: '0001-01-01' {RANGE}",
        ),
    ],
)
def test_a_moment_past_the_calendar_is_refused(settings, params, time_zone, message):
    settings.TIME_ZONE = time_zone
    with pytest.raises(InvalidRunQuery) as refused:
        parse_run_query(params)
    assert str(refused.value) == message


def test_the_calendar_s_first_and_last_days_are_searchable_in_utc(pipeline):
    run = RunFactory(pipeline=pipeline)
    assert found(created_after="0001-01-01", created_before="9999-12-31") == {run.id}
