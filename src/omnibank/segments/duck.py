"""The embedded engine: DuckDB over a profile snapshot and the event log, apart from the store.

A *profile snapshot* holds the customers' non-personal attributes, tags and merges as Parquet under
``<home>/snapshots`` (:func:`omnibank.segments.engine.current_snapshot` builds one when the store's data
versions moved). This module only reads snapshots, so it imports neither SQLAlchemy nor the models: a
``segment count`` over a snapshot that is already built (:func:`count_if_ready`) reads the store through a
plain DB-API cursor and starts in about half the time.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from omnibank.config import Settings
from omnibank.events.log import COLUMNS as LOG_COLUMNS
from omnibank.events.log import EventLog, configure
from omnibank.segments.compile import Compiled, Dialect, compile_expression, quote
from omnibank.segments.expr import Expression, Vocabulary, parse

if TYPE_CHECKING:
    import pyarrow as pa

#: the data kinds a snapshot is built from (:data:`omnibank.db.versions.KINDS`; a test keeps them equal)
VERSION_KINDS = ("customers", "orgs", "tags", "merges", "consent", "scores")


@dataclass(frozen=True)
class Snapshot:
    folder: Path
    versions: dict[str, int]

    @property
    def profiles(self) -> Path:
        return self.folder / "profiles.parquet"

    @property
    def tags(self) -> Path:
        return self.folder / "tags.parquet"

    @property
    def merges(self) -> Path:
        return self.folder / "merges.parquet"

    @property
    def scores(self) -> Path:
        return self.folder / "scores.parquet"


def _snapshots_dir(settings: Settings) -> Path:
    return settings.home_dir / "snapshots"


def snapshots_dir(settings: Settings) -> Path:
    return settings.home_dir / "snapshots"


def stored_snapshot(settings: Settings, versions: dict[str, int]) -> Snapshot | None:
    """The snapshot on disk if it was built at exactly these data versions, else ``None``."""
    root = snapshots_dir(settings)
    try:
        state = json.loads((root / "state.json").read_text())
        snap = Snapshot(root / state["folder"], {k: int(v) for k, v in state["versions"].items()})
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # a damaged state file: the caller builds anew
    return snap if snap.versions == versions and snap.scores.exists() else None


# --------------------------------------------------------------------------------------------- DuckDB


def _events_relation(settings: Settings, merges: Path | None) -> str:
    """The log as expressions see it: merged customers' events under their survivor, and ``weekday``
    (bank-local: the connection's time zone is the bank's)."""
    source = EventLog(settings).scan_sql()
    if merges is None:
        return f"SELECT *, isodow(ts) AS weekday FROM {source}"
    cols = ", ".join(f"e.{name}" for name, _ in LOG_COLUMNS if name != "customer_id")
    return (
        f"SELECT COALESCE(m.survivor_id, e.customer_id) AS customer_id, {cols}, e.month, "
        "isodow(e.ts) AS weekday "
        f"FROM {source} e LEFT JOIN read_parquet({quote(str(merges))}) m ON m.merged_id = e.customer_id"
    )


class DuckEngine:
    """DuckDB over the profile snapshot and the event log. Use as a context manager."""

    dialect: Dialect = "duckdb"

    def __init__(self, settings: Settings, snapshot: Snapshot, *, threads: int | None = None):
        self.settings = settings
        self.snapshot = snapshot
        self.con = duckdb.connect()
        configure(self.con, settings)
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        self.con.execute(
            f"CREATE VIEW profiles AS SELECT * FROM read_parquet({quote(str(snapshot.profiles))})"
        )
        # tags and events are bound on first use: binding the log's view reads every file's footer, which
        # an attribute-only count does not need
        self._tags: str | None = None
        self._scores = False
        self._events: list[Path] | None = None  # the log files the events view was bound to
        self.lock = threading.RLock()

    def _need(self, expression: Expression | None = None, *, tags_table: bool = False) -> None:
        if not self._scores and (expression is None or expression.models):
            self.con.execute(
                f"CREATE VIEW scores AS SELECT * FROM read_parquet({quote(str(self.snapshot.scores))})"
            )
            self._scores = True
        if self._tags is None and (tags_table or expression is None or expression.tags):
            kind = "TABLE" if tags_table else "VIEW"
            self.con.execute(
                f"CREATE {kind} tags AS SELECT * FROM read_parquet({quote(str(self.snapshot.tags))})"
            )
            self._tags = kind
        elif tags_table and self._tags == "VIEW":
            self.con.execute("DROP VIEW tags")
            self.con.execute(
                f"CREATE TABLE tags AS SELECT * FROM read_parquet({quote(str(self.snapshot.tags))})"
            )
            self._tags = "TABLE"
        if expression is None or expression.aggregates:
            files = EventLog(self.settings).files()
            if files == self._events:
                return
            merges = self.snapshot.merges
            row = self.con.execute(f"SELECT count(*) FROM read_parquet({quote(str(merges))})").fetchone()
            has_merges = bool(row and row[0])
            relation = _events_relation(self.settings, merges if has_merges else None)
            self.con.execute(f"CREATE OR REPLACE VIEW events AS {relation}")
            self._events = files

    def __enter__(self) -> DuckEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    def compiled(self, expression: Expression, as_of: date) -> Compiled:
        return compile_expression(expression, as_of, "duckdb")

    def count(self, expression: Expression, as_of: date) -> int:
        self._need(expression)
        rows = self.con.execute(self.compiled(expression, as_of).count_sql()).fetchall()
        return int(rows[0][0]) if rows else 0

    def ids(self, expression: Expression, as_of: date) -> pa.Array:
        self._need(expression)
        table = self.con.sql(self.compiled(expression, as_of).ids_sql()).to_arrow_table()
        return table.column(0).combine_chunks()

    def replace_tag(self, tag: str, ids: pa.Array) -> None:
        """Within this engine only: ``tag`` is now carried by exactly ``ids`` (tags computed in order
        see the tags computed before them)."""
        import pyarrow as pa

        self._need(tags_table=True)
        self.con.execute("DELETE FROM tags WHERE tag = ?", [tag])
        new = pa.table({"customer_id": ids.cast(pa.string()), "tag": pa.array([tag] * len(ids), pa.string())})
        self.con.register("_new_tag", new)
        self.con.execute("INSERT INTO tags SELECT customer_id, tag FROM _new_tag")
        self.con.unregister("_new_tag")

    def carriers(self, tag: str) -> pa.Array:
        """Who carries ``tag`` in this engine's tags."""
        self._need(tags_table=True)
        return (
            self.con.sql(f"SELECT customer_id FROM tags WHERE tag = {quote(tag)}")
            .to_arrow_table()
            .column(0)
            .combine_chunks()
        )

    def query(self, sql: str) -> pa.Table:
        """Any SQL over ``profiles``, ``tags``, ``scores`` and ``events`` (for reports such as the matrix)."""
        self._need()
        return self.con.sql(sql).to_arrow_table()


_shared: dict[str, DuckEngine] = {}
_shared_lock = threading.Lock()


@contextmanager
def engine_for(settings: Settings, snapshot: Snapshot, *, private: bool = False) -> Iterator[DuckEngine]:
    """A DuckDB engine over ``snapshot``. A long-lived process (server, worker, a benchmark) keeps one per
    snapshot and reuses it, one user at a time; ``private`` gives a fresh one (tag computation changes
    its ``tags`` table)."""
    if private:
        engine = DuckEngine(settings, snapshot)
        try:
            yield engine
        finally:
            engine.close()
        return
    key = str(snapshot.folder)
    with _shared_lock:
        shared = _shared.get(key)
        if shared is None:
            for old in _shared.values():
                old.close()
            _shared.clear()
            shared = _shared[key] = DuckEngine(settings, snapshot)
    with shared.lock:
        yield shared


def close_shared_engines() -> None:
    with _shared_lock:
        for engine in _shared.values():
            engine.close()
        _shared.clear()


def count_if_ready(settings: Settings, text: str, as_of: date) -> int | None:
    """How many customers match ``text`` as of ``as_of``, when the snapshot on disk is current: the store
    is read for its data versions and the names an expression may use, through a DB-API cursor. ``None``
    when the store is new, not migrated or moved on since the snapshot (the caller then takes the ordinary
    path, which migrates and rebuilds). The answer is the ordinary path's: same parser, same engine."""
    from omnibank.kit.store import read_cursor

    with read_cursor(settings.db_url) as cur:
        if cur is None:
            return None
        cur.execute("SELECT name, version FROM data_versions")
        rows = dict(cur.fetchall())
        snapshot = stored_snapshot(settings, {k: int(rows.get(k, 0)) for k in VERSION_KINDS})
        if snapshot is None:
            return None
        cur.execute("SELECT name FROM tag_definitions")
        tags = frozenset(r[0] for r in cur.fetchall())
        cur.execute("SELECT org_id FROM orgs")
        orgs = frozenset(r[0] for r in cur.fetchall())
        cur.execute("SELECT DISTINCT model FROM model_scores")
        models = frozenset(r[0] for r in cur.fetchall())
    expression = parse(text, Vocabulary(tags=tags, orgs=orgs, models=models))
    with engine_for(settings, snapshot) as duck:
        return duck.count(expression, as_of)
