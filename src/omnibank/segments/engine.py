"""Engines that answer "which customers?" for an expression.

* :class:`~omnibank.segments.duck.DuckEngine` — the embedded engine (``segments/duck.py``): DuckDB over
  the event log's Parquet files and a *profile snapshot* of the store (customers' non-personal
  attributes, tags, merges) written as Parquet under ``<home>/snapshots``. The snapshot is rebuilt here
  when the store's data versions moved since it was taken (one tiny query to know), so personal fields
  never reach DuckDB and DuckDB never opens the store.
* :class:`StoreEngine` — the same compiled SQL inside PostgreSQL, over ``customers``, ``customer_tags``
  and ``event_facts`` (the log's mirror: ``omnibank events mirror``).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from omnibank.config import Settings
from omnibank.consent.service import effective_marketing_sql
from omnibank.db import versions
from omnibank.errors import AppError
from omnibank.orgs.models import Org
from omnibank.segments.compile import Dialect, compile_expression, quote
from omnibank.segments.duck import DuckEngine, Snapshot, engine_for, snapshots_dir, stored_snapshot
from omnibank.segments.expr import Expression, Vocabulary, parse
from omnibank.segments.facts import customer_facts as customer_facts  # the one builder, known here too
from omnibank.segments.tables import model_scores, tag_definitions

if TYPE_CHECKING:
    import pyarrow as pa


@functools.cache
def snapshot_schemas() -> tuple[pa.Schema, pa.Schema, pa.Schema, pa.Schema]:
    """The snapshot files' schemas: profiles, tags, merges, scores (pyarrow is imported when a snapshot is
    built, not by every command that counts a segment over one already built)."""
    import pyarrow as pa

    profiles = pa.schema(
        [
            ("customer_id", pa.string()),
            ("gender", pa.string()),
            ("birth_date", pa.date32()),
            ("branch_id", pa.string()),
            ("rm_id", pa.string()),
            ("aum_fen", pa.int64()),
            ("occupation", pa.string()),
            ("risk_tolerance", pa.string()),
            ("channel_pref", pa.string()),
            ("marketing_consent", pa.bool_()),
            ("registered_at", pa.date32()),
            ("org_path", pa.string()),
        ]
    )
    tags = pa.schema([("customer_id", pa.string()), ("tag", pa.string())])
    merges = pa.schema([("merged_id", pa.string()), ("survivor_id", pa.string())])
    scores = pa.schema([("model", pa.string()), ("customer_id", pa.string()), ("score_ppm", pa.int64())])
    return profiles, tags, merges, scores


# marketing_consent is the effective consent (the latest consent record, else the customer file's flag);
# erased customers are no one's target any more
_PROFILES_SQL = (
    "SELECT c.customer_id, c.gender, c.birth_date, c.branch_id, c.rm_id, c.aum_fen, c.occupation, "
    f"c.risk_tolerance, c.channel_pref, {effective_marketing_sql('c')} AS marketing_consent, "
    "c.registered_at, o.path AS org_path "
    "FROM customers c JOIN orgs o ON o.org_id = c.branch_id "
    "WHERE c.erased_at IS NULL "
    "AND NOT EXISTS (SELECT 1 FROM customer_merges m WHERE m.merged_id = c.customer_id)"
)
_TAGS_SQL = "SELECT customer_id, tag FROM customer_tags"
_MERGES_SQL = "SELECT merged_id, survivor_id FROM customer_merges"
_SCORES_SQL = "SELECT model, customer_id, score_ppm FROM model_scores"


def vocabulary(session: Session) -> Vocabulary:
    """The tags, orgs and scored models an expression may name."""
    return Vocabulary(
        tags=frozenset(session.scalars(select(tag_definitions.c.name))),
        orgs=frozenset(session.scalars(select(Org.org_id))),
        models=scored_models(session),
    )


def scored_models(session: Session) -> frozenset[str]:
    """The models with stored scores (``score('NAME')`` may name them)."""
    return frozenset(session.scalars(select(model_scores.c.model).distinct()))


def parse_in(session: Session, text_: str) -> Expression:
    return parse(text_, vocabulary(session))


class Engine(Protocol):
    dialect: Dialect

    def count(self, expression: Expression, as_of: date) -> int: ...

    def ids(self, expression: Expression, as_of: date) -> pa.Array: ...


# ------------------------------------------------------------------------------------------ snapshot


def _fetch_table(session: Session, sql: str, schema: pa.Schema, batch: int = 200_000) -> pa.Table:
    """Stream a query's rows into an Arrow table of ``schema`` (SQLite gives dates as text, booleans as
    integers: cast here)."""
    import pyarrow as pa

    result = session.connection().exec_driver_sql(sql)
    chunks: list[pa.RecordBatch] = []
    while rows := result.fetchmany(batch):
        columns = list(zip(*rows, strict=True))
        arrays = []
        for i, fld in enumerate(schema):
            values = list(columns[i])
            if pa.types.is_date32(fld.type) and values and isinstance(values[0], str):
                arrays.append(pa.array(values, pa.string()).cast(pa.date32()))
            elif pa.types.is_boolean(fld.type) and values and isinstance(values[0], int):
                arrays.append(pa.array([None if v is None else bool(v) for v in values], pa.bool_()))
            else:
                arrays.append(pa.array(values, fld.type))
        chunks.append(pa.RecordBatch.from_arrays(arrays, schema=schema))
    return pa.Table.from_batches(chunks, schema=schema)


def current_snapshot(session: Session, settings: Settings, *, rebuild: bool = False) -> Snapshot:
    """The profile snapshot for the store as it is now: the one on disk if the store's data versions have
    not moved since it was taken, else a new one (written aside, then switched to atomically)."""
    now_versions = versions.current(session)
    if not rebuild and (snap := stored_snapshot(settings, now_versions)) is not None:
        return snap
    root = snapshots_dir(settings)
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.time_ns()
    while (root / f"v{stamp}").exists() or (root / f"v{stamp}.tmp").exists():
        stamp += 1  # a clock that stood still (a frozen test clock) or a twin process: the next name
    folder = root / f"v{stamp}"
    tmp = folder.with_suffix(".tmp")
    tmp.mkdir()
    import pyarrow.parquet as pq

    profiles, tags, merges, scores = snapshot_schemas()
    pq.write_table(_fetch_table(session, _PROFILES_SQL, profiles), tmp / "profiles.parquet")
    pq.write_table(_fetch_table(session, _TAGS_SQL, tags), tmp / "tags.parquet")
    pq.write_table(_fetch_table(session, _MERGES_SQL, merges), tmp / "merges.parquet")
    pq.write_table(_fetch_table(session, _SCORES_SQL, scores), tmp / "scores.parquet")
    tmp.rename(folder)
    state_tmp = root / f"state.{os.getpid()}.tmp"
    state_tmp.write_text(json.dumps({"folder": folder.name, "versions": now_versions}))
    os.replace(state_tmp, root / "state.json")
    # keep the one before (a reader may still be on it); remove older ones
    kept = sorted((p for p in root.iterdir() if p.is_dir() and p.name.startswith("v")), key=lambda p: p.name)
    for old in (p for p in kept[:-2] if p != folder):
        shutil.rmtree(old, ignore_errors=True)
    return Snapshot(folder, now_versions)


@contextmanager
def duck_engine(session: Session, settings: Settings, *, private: bool = False) -> Iterator[DuckEngine]:
    """The DuckDB engine over the current snapshot (built first when the store moved on since the last
    one). See :func:`omnibank.segments.duck.engine_for`."""
    with engine_for(settings, current_snapshot(session, settings), private=private) as engine:
        yield engine


# ------------------------------------------------------------------------------------------ the store

_STORE_CTES = (
    "profiles AS (SELECT c.customer_id, c.gender, c.birth_date, c.branch_id, c.rm_id, c.aum_fen, "
    f"c.occupation, c.risk_tolerance, c.channel_pref, {effective_marketing_sql('c')} AS marketing_consent, "
    "c.registered_at, o.path AS org_path "
    "FROM customers c JOIN orgs o ON o.org_id = c.branch_id "
    "WHERE c.erased_at IS NULL "
    "AND NOT EXISTS (SELECT 1 FROM customer_merges m WHERE m.merged_id = c.customer_id)), "
    "tags AS (SELECT customer_id, tag FROM customer_tags), "
    "scores AS (SELECT model, customer_id, score_ppm FROM model_scores), "
    "events AS (SELECT COALESCE(m.survivor_id, e.customer_id) AS customer_id, e.type, e.local_date, "
    "e.channel, e.amount, e.card_id, e.product, e.tier, e.is_primary, e.new_customer, e.merchant, e.mcc, "
    "e.points, e.reward, e.quantity, e.product_id, e.duration_s "
    "FROM event_facts e LEFT JOIN customer_merges m ON m.merged_id = e.customer_id)"
)


class StoreEngine:
    """The compiled SQL inside PostgreSQL (events from ``event_facts``: run ``omnibank events mirror``)."""

    dialect: Dialect = "postgres"

    def __init__(self, session: Session, timezone: str):
        if session.get_bind().dialect.name != "postgresql":
            raise AppError("the store engine needs PostgreSQL (OMNIBANK_DATABASE_URL); use the DuckDB engine")
        self.session = session
        weekday = f"CAST(EXTRACT(ISODOW FROM e.ts AT TIME ZONE {quote(timezone)}) AS INTEGER) AS weekday"
        self.ctes = _STORE_CTES.replace(
            "e.duration_s FROM event_facts", f"e.duration_s, {weekday} FROM event_facts"
        )

    def _rows(self, sql: str) -> list[tuple[object, ...]]:
        # straight to the driver without parameters: no placeholder processing of '%' or ':' in literals
        cursor = self.session.connection().connection.cursor()
        try:
            cursor.execute(sql)
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def count(self, expression: Expression, as_of: date) -> int:
        sql = compile_expression(expression, as_of, "postgres").count_sql(ctes=self.ctes)
        (n,) = self._rows(sql)[0]
        return int(str(n))

    def ids(self, expression: Expression, as_of: date) -> pa.Array:
        import pyarrow as pa

        sql = compile_expression(expression, as_of, "postgres").ids_sql(ctes=self.ctes)
        return pa.array([r[0] for r in self._rows(sql)], pa.string())
