"""The store's statements, prepared once per PostgreSQL connection (runs/store/prepared.py).

What a user would notice: the same runs, fewer parses (each statement in
pg_prepared_statements once, however often it ran); nothing prepared where the settings say
a pooler is in front; and a process handed a server connection that lacks its statement
(what PgBouncer in transaction pooling does) warns once and carries on unprepared.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from orbit.core.conf import PREPARE_WHEN_ASKED, prepares_statements
from runs import enqueue
from runs.models import Run
from runs.store import prepared
from tests.processes import ROOT, database_env
from tests.threads import at_once


@pytest.mark.parametrize(
    ("value", "database", "expected"),
    [
        ("auto", {}, True),
        ("auto", {"DISABLE_SERVER_SIDE_CURSORS": True}, False),
        ("auto", {"DISABLE_SERVER_SIDE_CURSORS": "true"}, False),  # as django-environ reads it
        (" AUTO ", {"DISABLE_SERVER_SIDE_CURSORS": False}, True),
        ("true", {"DISABLE_SERVER_SIDE_CURSORS": True}, True),
        ("false", {}, False),
        ("off", {}, False),
    ],
)
def test_the_setting_decides_with_the_database_behind_it(value, database, expected):
    assert prepares_statements(value, database) is expected


def test_a_setting_that_is_no_choice_is_refused_by_name():
    with pytest.raises(ImproperlyConfigured, match="ORBIT_PREPARED_STATEMENTS must be auto"):
        prepares_statements("sometimes", {})


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize(
    ("query", "extra", "expected"),
    [
        ("", {}, PREPARE_WHEN_ASKED),
        ("?disable_server_side_cursors=true", {}, None),  # the PgBouncer recipe
        (
            "?disable_server_side_cursors=true",
            {"ORBIT_PREPARED_STATEMENTS": "true"},
            PREPARE_WHEN_ASKED,
        ),
        ("", {"ORBIT_PREPARED_STATEMENTS": "false"}, None),
    ],
)
def test_the_settings_ask_psycopg_to_prepare_only_what_asks(query, extra, expected):
    env = {k: v for k, v in database_env().items() if k != "ORBIT_PREPARED_STATEMENTS"}
    env["DATABASE_URL"] += query
    env.update(extra)
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, django; django.setup(); from django.conf import settings; "
            "print(json.dumps(settings.DATABASES['default']['OPTIONS'].get('prepare_threshold')))",
        ],
        env={**env, "DJANGO_SETTINGS_MODULE": "orbit.settings"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(found.stdout) == expected


pg = pytest.mark.postgres


def prepared_here() -> dict[str, list[int]]:
    """This session's prepared statements of the store, by the statement's name: how often
    each ran (generic and custom plans together), one entry per statement prepared."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT substring(statement FROM '-- orbit: ([a-z_]+)'), generic_plans + custom_plans "
            "FROM pg_prepared_statements"
        )
        found: dict[str, list[int]] = {}
        for name, runs in cursor.fetchall():
            if name:
                found.setdefault(name, []).append(runs)
        return found


@pytest.fixture
def preparing(monkeypatch):
    """This connection prepares, as the settings have it, and no earlier test's refusal
    lingers."""
    connection.ensure_connection()
    monkeypatch.setattr(prepared, "_refused", False)
    monkeypatch.setattr(connection.connection, "prepare_threshold", PREPARE_WHEN_ASKED)
    return connection


@pg
@pytest.mark.django_db
def test_a_statement_is_parsed_once_and_run_many_times(preparing, test_pipelines):
    enqueue("t-recorded")
    [before] = prepared_here()["insert_run"]
    runs = [enqueue("t-recorded", metadata={"n": n}) for n in range(4)]
    assert prepared_here()["insert_run"] == [before + 4]  # the one statement, run again
    stored = Run.objects.filter(id__in=[run.id for run in runs])
    assert sorted(run.metadata["n"] for run in stored) == [0, 1, 2, 3]


@pg
@pytest.mark.django_db
def test_nothing_is_prepared_where_the_settings_say_so(preparing, monkeypatch, test_pipelines):
    monkeypatch.setattr(connection.connection, "prepare_threshold", None)
    enqueue("t-recorded")
    assert "insert_run" not in prepared_here()


@pg
@pytest.mark.django_db
def test_the_query_log_shows_each_statement_with_its_values(preparing, test_pipelines):
    with CaptureQueriesContext(connection) as queries:
        run = enqueue("t-recorded")
    assert "insert_run" not in prepared_here()
    assert any(str(run.id) in q["sql"] for q in queries.captured_queries)


def lose_the_prepared_insert() -> None:
    """Drop the insert's prepared statement behind psycopg's back: the next call finds a
    server connection without it, as one PgBouncer handed over in transaction pooling."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name FROM pg_prepared_statements WHERE statement LIKE '%%orbit: insert_run%%'"
        )
        [(name,)] = cursor.fetchall()
        cursor.execute(f'DEALLOCATE "{name}"')


@pg
@pytest.mark.django_db(transaction=True)
def test_a_refused_statement_warns_once_and_runs_unprepared(preparing, caplog, test_pipelines):
    enqueue("t-recorded")
    lose_the_prepared_insert()
    with caplog.at_level(logging.WARNING, logger="runs.store.prepared"):
        second = enqueue("t-recorded")
        third = enqueue("t-recorded")
    assert Run.objects.filter(id__in=[second.id, third.id]).count() == 2
    assert Run.objects.count() == 3
    warnings = [r.getMessage() for r in caplog.records if r.name == "runs.store.prepared"]
    assert len(warnings) == 1 and "ORBIT_PREPARED_STATEMENTS=false" in warnings[0]
    assert connection.connection.prepare_threshold is None


@pg
@pytest.mark.django_db(transaction=True)
def test_in_a_transaction_the_refusal_fails_it_and_the_next_one_works(preparing, test_pipelines):
    enqueue("t-recorded")
    lose_the_prepared_insert()
    with pytest.raises(DatabaseError, match="does not exist"), transaction.atomic():
        enqueue("t-recorded")
    assert Run.objects.count() == 1  # the failed transaction left nothing
    with transaction.atomic():
        enqueue("t-recorded")
    assert Run.objects.count() == 2


@pg
@pytest.mark.django_db(transaction=True)
def test_after_a_reconnect_the_statements_are_prepared_on_the_new_connection(
    preparing, monkeypatch, test_pipelines
):
    first = enqueue("t-recorded")
    connection.close()  # as Django does at the end of a request, or after a lost connection
    connection.ensure_connection()
    monkeypatch.setattr(connection.connection, "prepare_threshold", PREPARE_WHEN_ASKED)
    second = enqueue("t-recorded")
    assert prepared_here()["insert_run"] == [1]  # this session's own, run once
    assert Run.objects.filter(id__in=[first.id, second.id]).count() == 2


@pg
@pytest.mark.django_db(transaction=True)
def test_a_statement_that_fails_leaves_the_next_one_working(preparing, test_pipelines):
    with pytest.raises(DatabaseError, match="division by zero"):
        prepared.execute(
            connections["default"], "SELECT 1 / %(zero)s::int -- orbit: divide", {"zero": 0}
        )
    run = enqueue("t-recorded")
    assert Run.objects.get(id=run.id).status == "pending"
    assert prepared_here()["insert_run"] == [1]


@pg
@pytest.mark.django_db(transaction=True)
def test_threads_enqueue_at_once_each_on_its_own_connection(preparing, test_pipelines):
    made: list[uuid.UUID] = []
    at_once(
        lambda: made.extend(enqueue("t-recorded", metadata={"n": n}).id for n in range(20)),
        4,
        timeout=60,
    )
    assert Run.objects.filter(id__in=made).count() == len(made) == 80
