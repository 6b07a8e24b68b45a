"""db_now(): the database's clock, aware and in UTC, on every database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction

from orbit.core.clock import db_now

pytestmark = pytest.mark.django_db


def test_it_is_an_aware_utc_datetime_close_to_this_hosts_clock():
    now = db_now()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)


def test_it_costs_one_statement(django_assert_num_queries):
    with django_assert_num_queries(1):
        db_now()


def test_it_moves_on():
    first = db_now()
    second = db_now()
    assert second >= first


@pytest.mark.postgres
def test_on_postgresql_it_is_the_statements_time_not_the_transactions():
    """statement_timestamp() moves on inside a transaction, where now() would stand still."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT now(), statement_timestamp()")
            started, before = cursor.fetchone()
        now = db_now()
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement_timestamp()")
            (after,) = cursor.fetchone()
    assert before <= now <= after
    assert now > started


@pytest.mark.postgres
def test_on_postgresql_it_agrees_with_statement_timestamp_within_the_statement():
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        (before,) = cursor.fetchone()
    now = db_now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        (after,) = cursor.fetchone()
    assert before <= now <= after
    assert now.utcoffset() == timedelta(0)
