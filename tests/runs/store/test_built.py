"""Statements built before a transaction and sent inside it (runs/store/built.py): they
write and read what the ORM itself would, on both databases."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection, transaction

from runs.models import Run, RunStatus
from runs.store import built
from tests.runs.store.conftest import insert

pytestmark = pytest.mark.django_db


def test_a_read_built_ahead_returns_the_rows_the_orm_would(store, pipeline):
    ids = {insert(store, pipeline) for _ in range(3)}
    query = Run.objects.filter(status=RunStatus.PENDING).values_list("id")
    statement = built.select(query)
    assert statement is not None
    keys = built.pk_values(Run, built.fetch(statement))
    assert set(keys) == ids == {row[0] for row in query}
    assert all(isinstance(key, uuid.UUID) for key in keys)  # not SQLite's text


def test_a_read_that_can_match_nothing_returns_no_row():
    assert built.fetch(built.select(Run.objects.filter(queue__in=[]).values_list("id"))) == []


def test_a_locking_read_is_built_ahead_only_where_there_are_no_row_locks():
    query = Run.objects.select_for_update().values_list("id")
    statement = built.select(query)
    if connection.features.has_select_for_update:
        assert statement is None  # the ORM builds it inside its transaction
    else:
        assert statement is not None and "FOR UPDATE" not in statement[0]


def test_one_update_gives_each_row_its_own_values(store, pipeline):
    a, b = insert(store, pipeline), insert(store, pipeline)
    statement = built.update_each(
        Run.objects.all(), [(a, {"priority": 5, "error": "x"}), (b, {"priority": 7})]
    )
    assert statement is not None
    with transaction.atomic():
        assert built.send(statement) == 2
    assert Run.objects.get(id=a).priority == 5 and Run.objects.get(id=a).error == "x"
    assert Run.objects.get(id=b).priority == 7 and Run.objects.get(id=b).error == ""


def test_one_update_refuses_a_row_named_twice(store, pipeline):
    a = insert(store, pipeline)
    with pytest.raises(ValueError, match="each row once"):
        built.update_each(Run.objects.all(), [(a, {"priority": 5}), (a, {"priority": 7})])
    assert built.update_each(Run.objects.all(), []) is None
