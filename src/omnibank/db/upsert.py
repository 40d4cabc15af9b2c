"""Idempotent bulk upsert: a row whose fingerprint has not changed is left untouched."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Dialect, Table
from sqlalchemy.dialects.postgresql import Insert as ConflictInsert
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

# SQL text, a getter of the parameters in order, and the (position, bind processor) pairs that need one
_Plan = tuple[str, Callable[[dict[str, Any]], tuple[Any, ...]], list[tuple[int, Callable[[Any], Any]]]]
_plans: dict[tuple[int, str, str, tuple[str, ...]], _Plan] = {}


def insert_for(session: Session, table: Any) -> ConflictInsert:
    """An INSERT into ``table`` (a model or a Table) in the store's dialect, so that
    ``on_conflict_do_nothing`` and ``on_conflict_do_update`` can follow (PostgreSQL and SQLite write them
    alike)."""
    return _dialect_insert(session.get_bind().dialect.name, table)


def _dialect_insert(dialect: str, table: Any) -> ConflictInsert:
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert

        return insert(table)  # type: ignore[return-value]  # the same ON CONFLICT methods
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    raise RuntimeError(f"no upsert for {dialect}")  # pragma: no cover - config refuses other databases


def _statement(table: Table, dialect: str, key: str, keep_on_update: Sequence[str]) -> Insert:
    stmt = _dialect_insert(dialect, table)
    skip = {key, *keep_on_update}
    return stmt.on_conflict_do_update(
        index_elements=[table.c[key]],
        set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in skip},
        where=table.c.fingerprint != stmt.excluded.fingerprint,
    )


def _sqlite_plan(table: Table, dialect: Dialect, key: str, keep_on_update: Sequence[str]) -> _Plan:
    """The statement compiled once, with each parameter's bind processor, so that a batch goes to the
    driver's executemany without per-row work in SQLAlchemy."""
    cache_key = (id(table), dialect.name, key, tuple(keep_on_update))
    plan = _plans.get(cache_key)
    if plan is None:
        compiled = _statement(table, dialect.name, key, keep_on_update).compile(dialect=dialect)
        order = list(compiled.positiontup or [])
        procs: list[tuple[int, Callable[[Any], Any]]] = [
            (i, p) for i, name in enumerate(order) if (p := table.c[name].type.bind_processor(dialect))
        ]
        getter: Callable[[dict[str, Any]], tuple[Any, ...]] = itemgetter(*order)
        plan = (compiled.string, getter, procs)
        _plans[cache_key] = plan
    return plan


def upsert_changed(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    key: str,
    keep_on_update: Sequence[str] = (),
) -> int:
    """Insert ``rows``, or update the existing row with the same ``key`` where its ``fingerprint``
    differs. Returns how many rows were inserted or changed; the rest already stood as given.
    Keys must be unique within one call (a multi-row upsert cannot touch a row twice)."""
    if not rows:
        return 0
    conn = session.connection()
    dialect = conn.dialect
    if dialect.name == "sqlite":
        sql, getter, procs = _sqlite_plan(table, dialect, key, keep_on_update)
        params = []
        for row in rows:
            values = list(getter(row))
            for i, proc in procs:
                values[i] = proc(values[i])
            params.append(tuple(values))
        return int(conn.exec_driver_sql(sql, params).rowcount)
    # psycopg reports no row count for a batch; RETURNING yields exactly the inserted or changed rows.
    stmt = _statement(table, dialect.name, key, keep_on_update).returning(table.c[key])
    return len(session.execute(stmt, list(rows)).all())
