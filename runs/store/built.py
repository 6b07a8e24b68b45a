"""Statements the ORM builds ahead of a transaction and the portable store sends inside it.

On SQLite a write transaction holds the database's one write lock from `BEGIN IMMEDIATE`
to its commit, and every worker's claims and commits take it. Building a statement (the
querysets, their lookups and expressions, the compiler) was most of what a worker did
with the lock held: in a py-spy of one worker draining no-op runs, SQLite itself ran for
about a fifth of a commit's time and an eighth of a claim's candidate read. So the
portable store builds what it can before `BEGIN` and, inside, only sends it.

A statement is sent exactly as the ORM would have sent it, through the connection's own
cursor (so query logging and the pinned statement counts see it as before). What comes
back is the database's raw values: `pk_values` turns a column of primary keys into the
field's Python values (on SQLite a UUID column reads back as text).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connections, models
from django.db.models import F, QuerySet
from django.db.models.sql import InsertQuery, UpdateQuery

#: SQL and its parameters, as the ORM built them.
Statement = tuple[str, Sequence[Any]]


def select(query: QuerySet[Any]) -> Statement | None:
    """The SELECT `query` sends, built now. None for a read that takes row locks on a
    database that has them: the ORM builds those only inside their transaction (SQLite
    has no row locks; its write lock, taken at BEGIN, serialises writers instead)."""
    if query.query.select_for_update and connections[query.db].features.has_select_for_update:
        return None
    try:
        sql, params = query.query.get_compiler(query.db).as_sql()
    except EmptyResultSet:  # it can match nothing (an empty IN list): the ORM sends nothing
        return NOTHING
    return sql, params


#: A read that returns no row, for a query that can match nothing.
NOTHING: Statement = ("SELECT 1 WHERE 1 = 0", ())


def update(rows: QuerySet[Any], updates: Mapping[str, Any]) -> Statement:
    """The UPDATE `rows.update(**updates)` sends, built now."""
    query = rows.query.chain(UpdateQuery)
    assert isinstance(query, UpdateQuery)
    query.add_update_values(dict(updates))
    query.annotations = {}
    sql, params = query.get_compiler(rows.db).as_sql()
    return sql, params


def insert(model: type[models.Model], rows: Sequence[models.Model]) -> list[Statement]:
    """The INSERTs `model.objects.bulk_create(rows)` sends for rows whose primary key the
    database assigns, built now: split as bulk_create splits them (the database's bound
    parameter limit), without reading the new keys back."""
    if not rows:
        return []
    fields = [
        f
        for f in model._meta.concrete_fields
        if not f.generated and not isinstance(f, models.AutoField)
    ]
    using = model._default_manager.db
    size = max(connections[using].ops.bulk_batch_size(fields, rows), 1)
    statements: list[Statement] = []
    for start in range(0, len(rows), size):
        query = InsertQuery(model)
        query.insert_values(fields, list(rows[start : start + size]))
        statements.extend(query.get_compiler(using).as_sql())
    return statements


def send(statement: Statement, using: str = "default") -> int:
    """Send a built statement; the number of rows it wrote."""
    with connections[using].cursor() as cursor:
        cursor.execute(*statement)
        return int(cursor.rowcount)


def fetch(statement: Statement, using: str = "default") -> list[tuple[Any, ...]]:
    """Send a built SELECT; its rows as the database returns them."""
    with connections[using].cursor() as cursor:
        cursor.execute(*statement)
        return [tuple(row) for row in cursor.fetchall()]


def pk_values(model: type[models.Model], rows: Iterable[tuple[Any, ...]]) -> list[Any]:
    """The first column of `rows` as the model's primary keys (UUIDs, not their text)."""
    field = model._meta.pk
    assert field is not None
    return [field.to_python(row[0]) for row in rows]


def update_each(
    rows: QuerySet[Any], changes: Sequence[tuple[Any, Mapping[str, Any]]]
) -> Statement | None:
    """One UPDATE changing each row of `rows` named in `changes` (primary key, `update()`
    arguments) as its own arguments say: a column set alike for every row is set
    plainly, one that differs becomes a CASE on the primary key (rows that do not set it
    keep theirs). The primary keys are distinct. None when nothing changes."""
    if not changes:
        return None
    keys = [pk for pk, _ in changes]
    if len(set(keys)) < len(keys):  # a CASE would apply only the first change of a row
        raise ValueError("update_each changes each row once")
    model = rows.model
    columns = list(dict.fromkeys(column for _, updates in changes for column in updates))
    sets: dict[str, Any] = {}
    for column in columns:
        values = [(pk, updates.get(column, KEPT)) for pk, updates in changes]
        first = values[0][1]
        if first is not KEPT and all(value == first for _, value in values[1:]):
            sets[column] = first
        else:
            sets[column] = ByKey(column, model._meta.get_field(column), values)
    return update(rows.filter(pk__in=keys), sets)


#: A row that leaves the column as it is (`update_each`).
KEPT: Any = object()


class ByKey(models.Expression):
    """`CASE pk WHEN k1 THEN v1 ... ELSE column END`: each row's own value of `column` in
    one UPDATE. Written out here rather than as Case(When(pk=...)) because the ORM builds
    and compiles a lookup per When, which on SQLite cost more than the statement saved."""

    def __init__(self, column: str, field: Any, values: Sequence[tuple[Any, Any]]) -> None:
        super().__init__(output_field=field)
        self.column = column
        self.values = list(values)
        self.key: Any = F("pk")
        self.kept: Any = F(column)

    def resolve_expression(self, *args: Any, **kwargs: Any) -> ByKey:
        resolved = self.copy()
        resolved.key = self.key.resolve_expression(*args, **kwargs)
        resolved.kept = self.kept.resolve_expression(*args, **kwargs)
        resolved.values = [
            (pk, v.resolve_expression(*args, **kwargs) if hasattr(v, "resolve_expression") else v)
            for pk, v in self.values
        ]
        return resolved

    def as_sql(self, compiler: Any, connection: Any) -> Any:
        key_sql, params = compiler.compile(self.key)
        key_field = self.key.output_field
        sql = [f"CASE {key_sql}"]
        for pk, value in self.values:
            if value is KEPT:
                continue
            if hasattr(value, "as_sql"):
                value_sql, value_params = compiler.compile(value)
            else:
                value_sql = "%s"
                value_params = [self.output_field.get_db_prep_save(value, connection)]
            sql.append(f"WHEN %s THEN {value_sql}")
            params = [*params, key_field.get_db_prep_value(pk, connection), *value_params]
        kept_sql, kept_params = compiler.compile(self.kept)
        sql.append(f"ELSE {kept_sql} END")
        return " ".join(sql), [*params, *kept_params]
