"""Bulk writes of many small rows: the driver's fastest path on each store (SQLite executemany with the
columns' bind processors applied once; PostgreSQL COPY)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session

_CHUNK = 50_000
_UNSET = object()


def insert_rows(session: Session, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Insert ``rows`` (tuples in ``columns`` order, Python values) into ``table``; returns the count."""
    conn = session.connection()
    dialect = conn.dialect
    n = 0
    if dialect.name == "postgresql":
        raw = conn.connection.dbapi_connection
        assert raw is not None
        sql = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
        with raw.cursor() as cur, cur.copy(sql) as copy:  # type: ignore[attr-defined]
            for row in rows:
                copy.write_row(row)
                n += 1
        return n
    procs = [(i, p) for i, c in enumerate(columns) if (p := table.c[c].type.bind_processor(dialect))]
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
    # processors are pure: a value passed again (the same object, as a computation time or an as-of day
    # given for every row is) reuses its bound form instead of being processed millions of times
    last: list[tuple[Any, Any]] = [(_UNSET, None)] * len(columns)
    batch: list[tuple[Any, ...]] = []
    width = len(columns)
    for row in rows:
        if len(row) != width:
            raise ValueError(f"{table.name}: a row of {len(row)} values for {width} columns")
        if procs:
            values = list(row)
            for i, p in procs:
                v = values[i]
                seen, bound = last[i]
                if v is not seen:
                    bound = p(v)
                    last[i] = (v, bound)
                values[i] = bound
            batch.append(tuple(values))
        else:
            batch.append(tuple(row))
        if len(batch) >= _CHUNK:
            conn.exec_driver_sql(sql, batch)
            n += len(batch)
            batch = []
    if batch:
        conn.exec_driver_sql(sql, batch)
        n += len(batch)
    return n


def insert_new_columns(session: Session, table: Table, columns: dict[str, Sequence[Any]]) -> None:
    """Insert rows given column by column (equal lengths, Python values), except those whose key is
    already taken, by a row there before or written meanwhile by another transaction
    (``ON CONFLICT DO NOTHING``)."""
    names = list(columns)
    if not names or not len(columns[names[0]]):
        return
    conn = session.connection()
    dialect = conn.dialect
    if dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert

        rows = [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]
        for i in range(0, len(rows), _CHUNK):
            session.execute(insert(table).on_conflict_do_nothing(), rows[i : i + _CHUNK])
        return
    values: list[Sequence[Any]] = []
    for name in names:
        proc = table.c[name].type.bind_processor(dialect)
        values.append(list(map(proc, columns[name])) if proc else columns[name])
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)}) "
        "ON CONFLICT DO NOTHING"
    )
    conn.exec_driver_sql(sql, list(zip(*values, strict=True)))


def delete_keys(session: Session, table: Table, columns: Sequence[str], keys: Iterable[Sequence[Any]]) -> int:
    """Delete the rows whose ``columns`` equal each key tuple."""
    conn = session.connection()
    mark = "%s" if conn.dialect.name == "postgresql" else "?"
    sql = f"DELETE FROM {table.name} WHERE " + " AND ".join(f"{c} = {mark}" for c in columns)
    batch = [tuple(k) for k in keys]
    for i in range(0, len(batch), _CHUNK):
        conn.exec_driver_sql(sql, batch[i : i + _CHUNK])
    return len(batch)


def update_column(
    session: Session, table: Table, keys: Sequence[str], column: str, rows: Sequence[Sequence[Any]]
) -> int:
    """Set ``column`` of the rows whose ``keys`` equal each row's leading values (rows: the key values, then
    the new value). PostgreSQL: the rows COPY'd into a temporary table and one ``UPDATE … FROM`` it (a
    statement a row, or arrays of long texts, cost seconds a file of a large bank); SQLite: executemany."""
    if not rows:
        return 0
    conn = session.connection()
    names = [*keys, column]
    if conn.dialect.name == "postgresql":
        raw = conn.connection.dbapi_connection
        assert raw is not None
        listed = ", ".join(names)
        cursor: Any = raw.cursor()
        with cursor as cur:
            cur.execute(
                f"CREATE TEMP TABLE _bulk_update ON COMMIT DROP AS "
                f"SELECT {listed} FROM {table.name} WITH NO DATA"
            )
            with cur.copy(f"COPY _bulk_update ({listed}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            match = " AND ".join(f"t.{k} = u.{k}" for k in keys)
            cur.execute(
                f"UPDATE {table.name} AS t SET {column} = u.{column} FROM _bulk_update AS u WHERE {match}"
            )
            cur.execute("DROP TABLE _bulk_update")
        return len(rows)
    sql = f"UPDATE {table.name} SET {column} = ? WHERE " + " AND ".join(f"{k} = ?" for k in keys)
    conn.exec_driver_sql(sql, [(r[-1], *r[:-1]) for r in rows])
    return len(rows)
