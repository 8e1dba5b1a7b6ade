"""Fast inserts of many rows: PostgreSQL COPY where available, Django's bulk_create everywhere else.

Ingestion writes about fifteen rows per record (the record and its LSH band keys). Django's bulk_create builds
one multi-row INSERT per batch and, for ids, parses a RETURNING list: fine for thousands of rows, the bottleneck at
millions. On PostgreSQL this module instead

- takes ids, when asked for, from the table's sequence in one query (``nextval`` over ``generate_series``), and
- streams the rows with psycopg 3 ``COPY ... FROM STDIN`` in text format.

Rows are model instances or tuples in ``fields`` order. A concrete field that is not named gets what
bulk_create would give it: ``timezone.now()`` for ``auto_now``/``auto_now_add`` fields, otherwise the field's
default. JSON fields are sent as JSON text, binary fields as bytes, datetimes aware (USE_TZ). No model ``save()``
runs and no signal fires, exactly as with bulk_create.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.db import connections, models, router
from django.utils import timezone

_Row = Sequence[Any]

# Rows this process has copied into each table since it last analyzed it. The planner needs fresh statistics on a
# table that grows by millions of rows in minutes: with none (autovacuum off, or not yet run) it probes the band
# index by Datanet only and filters 5,000 keys over every row, so each batch costs more than the one before.
_grown: dict[str, int] = {}
ANALYZE_MIN_ROWS = 20_000
ANALYZE_FRACTION = 0.25


class RawJSON(str):
    """JSON text that is already serialized (e.g. canonical JSON made for hashing): a JSON field's value that
    COPY sends as is instead of serializing it again."""


def _to_copy(field: models.Field) -> Callable[[Any], Any] | None:
    """How a Python value of ``field`` becomes a COPY value; None means as is (psycopg adapts it)."""
    if isinstance(field, models.JSONField):
        encoder = field.encoder

        def dump_json(value: Any) -> str | None:
            # Django stores a Python None in a JSON field as JSON null, not SQL NULL (unless the field is nullable
            # and the value is None, which Django also turns into SQL NULL).
            if value is None and field.null:
                return None
            if isinstance(value, RawJSON):
                return str(value)
            return json.dumps(value, cls=encoder, ensure_ascii=False)

        return dump_json
    if isinstance(field, models.BinaryField):
        return lambda value: None if value is None else bytes(value)
    return None


def _plan(model: type[models.Model], fields: Sequence[str]) -> tuple[list[models.Field], list[models.Field]]:
    """(the named fields, the other concrete non-pk fields that must be filled in)."""
    opts = model._meta
    named = [opts.get_field(name) for name in fields]
    if any(not f.concrete or f.primary_key for f in named):
        raise ValueError("bulk_insert takes concrete, non-primary-key fields")
    named_set = {f.attname for f in named}
    others = [f for f in opts.concrete_fields if not f.primary_key and f.attname not in named_set]
    return named, others


def _fill_value(field: models.Field, now: Any) -> Any:
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return now
    return field.get_default()


def bulk_insert(
    model: type[models.Model],
    objs_or_rows: Iterable[models.Model] | Iterable[_Row],
    *,
    fields: Sequence[str],
    returning_ids: bool = False,
    batch_size: int = 5000,
) -> list[int] | None:
    """Insert the rows; with ``returning_ids``, return their new primary keys in input order (ascending)."""
    iterator = iter(objs_or_rows)
    first = next(iterator, None)
    if first is None:
        return [] if returning_ids else None
    # Without ids the rows stream straight into COPY, so a million-row insert never sits in memory at once.
    items: Iterable[Any] = [first, *iterator] if returning_ids else itertools.chain([first], iterator)
    connection = connections[router.db_for_write(model)]
    is_instances = isinstance(first, models.Model)
    named, others = _plan(model, fields)
    if is_instances:  # every concrete field comes from the instance, as with bulk_create
        named, others = named + others, []
    now = timezone.now()

    if connection.vendor != "postgresql":
        if is_instances:
            objs = list(items)
        else:
            objs = [
                model(**{f.attname: json.loads(v) if isinstance(v, RawJSON) else v for f, v in zip(named, row)})
                for row in items
            ]
        created = model._default_manager.bulk_create(objs, batch_size=batch_size)
        return [obj.pk for obj in created] if returning_ids else None

    table = model._meta.db_table
    quote = connection.ops.quote_name
    pk_column = model._meta.pk.column
    with connection.cursor() as cursor:
        ids: list[int] = []
        if returning_ids:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [table, pk_column, len(items)],  # type: ignore[arg-type]
            )
            # nextval in one statement yields increasing values; sort anyway, ids must follow insertion order.
            ids = sorted(row[0] for row in cursor.fetchall())
        columns = ([pk_column] if returning_ids else []) + [f.column for f in named] + [f.column for f in others]
        converters = [_to_copy(f) for f in named]
        fill = tuple(_fill_value(f, now) for f in others)
        fill = tuple(conv(v) if (conv := _to_copy(f)) else v for f, v in zip(others, fill))
        sql = f"COPY {quote(table)} ({', '.join(quote(c) for c in columns)}) FROM STDIN"
        with connection.wrap_database_errors, cursor.cursor.copy(sql) as copy:
            write = copy.write_row
            written = 0
            convert = [(j, conv) for j, conv in enumerate(converters) if conv is not None]
            for written, item in enumerate(items, 1):
                if is_instances:
                    values = [_instance_value(item, f, now) for f in named]
                elif convert:
                    values = list(item)
                else:
                    values = item
                if convert:
                    for j, conv in convert:
                        values[j] = conv(values[j])
                if returning_ids:
                    write((ids[written - 1], *values, *fill))
                elif fill:
                    write((*values, *fill))
                else:
                    write(values)
        _analyze_if_grown(cursor, table, written)
        if returning_ids and is_instances:
            for obj, pk in zip(items, ids):  # items is a list here
                obj.pk = pk
                obj._state.adding = False
                obj._state.db = connection.alias
    return ids if returning_ids else None


def _instance_value(obj: models.Model, field: models.Field, now: Any) -> Any:
    # What DateTimeField.pre_save does on an insert.
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        setattr(obj, field.attname, now)
        return now
    return getattr(obj, field.attname)


def _analyze_if_grown(cursor: Any, table: str, written: int) -> None:
    """ANALYZE ``table`` once this process has added a quarter of its rows (and at least ANALYZE_MIN_ROWS) since
    the statistics were taken, as autovacuum would, but without waiting for it."""
    grown = _grown.get(table, 0) + written
    if grown < ANALYZE_MIN_ROWS:
        _grown[table] = grown
        return
    cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
    row = cursor.fetchone()
    known = max(float(row[0]) if row else 0.0, 0.0)  # -1 when never analyzed
    if grown >= ANALYZE_FRACTION * known:
        cursor.execute(f"ANALYZE {cursor.db.ops.quote_name(table)}")
        grown = 0
    _grown[table] = grown
