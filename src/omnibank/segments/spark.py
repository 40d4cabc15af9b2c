"""The same expressions on Apache Spark: for a bank whose customers and events outgrow one machine.

Spark reads what the embedded engine reads, never the store: the Parquet event log (the files
:meth:`omnibank.events.log.EventLog.files` lists, on storage the cluster shares) and a *profile snapshot*
(customers' non-personal attributes, tags, merges and stored scores: :func:`omnibank.segments.engine.
current_snapshot`, or a folder written by ``omnibank export attributes``). An expression is compiled by the
one compiler (:mod:`omnibank.segments.compile`, dialect ``spark``: DuckDB's SQL with day differences as
``date_diff``) and transpiled to Spark SQL by sqlglot, so every engine answers from the same tree.

``pyspark`` is an optional extra (``pip install omnibank[spark]``) and needs a Java runtime (Debian's
``openjdk-17-jre-headless``); it is imported only here, when a command asks for ``--engine spark``. The
session runs in the bank's time zone; ``master`` is ``local[*]`` by default, or a cluster's URL
(``spark://host:7077``, ``yarn``…), whose executors must read the same paths.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omnibank.config import Settings
from omnibank.errors import AppError
from omnibank.events.log import COLUMNS as LOG_COLUMNS
from omnibank.events.log import EventLog
from omnibank.segments.compile import compile_expression
from omnibank.segments.duck import Snapshot
from omnibank.segments.expr import Expression

if TYPE_CHECKING:
    import pyarrow as pa

DEFAULT_MASTER = "local[*]"

#: the log's columns in Spark SQL types (an empty log still has the relation)
_SPARK_TYPES = {
    "VARCHAR": "STRING", "TIMESTAMPTZ": "TIMESTAMP", "DATE": "DATE", "DECIMAL(18,2)": "DECIMAL(18,2)",
    "BOOLEAN": "BOOLEAN", "BIGINT": "BIGINT", "DOUBLE": "DOUBLE",
}  # fmt: skip


class SparkUnavailable(AppError):
    code = "spark_unavailable"
    status = 503


def to_spark_sql(sql: str) -> str:
    """The compiler's DuckDB-shaped SQL as Spark SQL (sqlglot)."""
    import sqlglot

    return str(sqlglot.transpile(sql, read="duckdb", write="spark")[0])


@functools.cache
def _session(master: str, timezone: str) -> Any:
    """One Spark session a process (Spark allows one); local mode quiet and small."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise SparkUnavailable(
            "--engine spark needs pyspark and a Java runtime: pip install 'omnibank[spark]' and install Java "
            "17 (Debian: apt install openjdk-17-jre-headless)"
        ) from None
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # Python workers run this interpreter
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # one machine: no interface to pick
    cores = os.cpu_count() or 2
    builder = (
        SparkSession.builder.master(master)
        .appName("omnibank")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", timezone)
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        .config(
            "spark.sql.shuffle.partitions", str(max(2, 2 * cores)) if master.startswith("local") else "200"
        )
        .config("spark.sql.adaptive.enabled", "true")
        .config("spark.driver.memory", os.environ.get("OMNIBANK_SPARK_DRIVER_MEMORY", "2g"))
    )
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # no Java, a master that cannot be reached
        raise SparkUnavailable(f"Spark did not start ({master}): {str(exc).splitlines()[0][:300]}") from None
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def stop_sessions() -> None:
    """Stop the process's Spark session (tests, the end of a command)."""
    if _session.cache_info().currsize:
        from pyspark.sql import SparkSession

        active = SparkSession.getActiveSession()
        if active is not None:
            active.stop()
        _session.cache_clear()


class SparkEngine:
    """Spark SQL over a profile snapshot and the event log's Parquet files (see the module's docstring)."""

    dialect = "spark"

    def __init__(self, settings: Settings, snapshot: Snapshot, *, master: str = DEFAULT_MASTER):
        self.settings = settings
        self.snapshot = snapshot
        self.spark = _session(master, settings.timezone)
        read = self.spark.read
        read.parquet(str(snapshot.profiles)).createOrReplaceTempView("profiles")
        self._tags = read.parquet(str(snapshot.tags))
        self._tags.createOrReplaceTempView("tags")
        read.parquet(str(snapshot.scores)).createOrReplaceTempView("scores")
        self._events_bound = False

    def _bind_events(self) -> None:
        if self._events_bound:
            return
        log = EventLog(self.settings)
        files = log.files()
        if files:
            raw = self.spark.read.option("basePath", str(log.dir)).option("mergeSchema", "true")
            raw.parquet(*(str(f) for f in files)).createOrReplaceTempView("raw_events")
        else:
            cols = ", ".join(f"CAST(NULL AS {_SPARK_TYPES[kind]}) AS {name}" for name, kind in LOG_COLUMNS)
            self.spark.sql(
                f"SELECT {cols}, CAST(NULL AS STRING) AS month WHERE false"
            ).createOrReplaceTempView("raw_events")
        self.spark.read.parquet(str(self.snapshot.merges)).createOrReplaceTempView("merges")
        cols = ", ".join(f"e.{name}" for name, _ in LOG_COLUMNS if name != "customer_id")
        # weekday: the bank-local ISO day (Spark's weekday() is 0 on Monday)
        self.spark.sql(
            f"SELECT COALESCE(m.survivor_id, e.customer_id) AS customer_id, {cols}, e.month, "
            "weekday(e.local_date) + 1 AS weekday "
            "FROM raw_events e LEFT JOIN merges m ON m.merged_id = e.customer_id"
        ).createOrReplaceTempView("events")
        self._events_bound = True

    def _sql(self, expression: Expression, sql: str) -> Any:
        if expression.aggregates:
            self._bind_events()
        return self.spark.sql(to_spark_sql(sql))

    def count(self, expression: Expression, as_of: date) -> int:
        compiled = compile_expression(expression, as_of, "spark")
        return int(self._sql(expression, compiled.count_sql()).collect()[0][0])

    def ids(self, expression: Expression, as_of: date) -> pa.Array:
        import pyarrow as pa

        compiled = compile_expression(expression, as_of, "spark")
        rows = self._sql(expression, compiled.ids_sql()).collect()
        return pa.array([r[0] for r in rows], pa.string())

    def carriers(self, tag: str) -> pa.Array:
        """Who carries ``tag`` in this engine's tags."""
        import pyarrow as pa

        rows = self._tags.filter(self._tags.tag == tag).select("customer_id").collect()
        return pa.array([r[0] for r in rows], pa.string())

    def replace_tag(self, tag: str, ids: pa.Array) -> None:
        """Within this engine only: ``tag`` is now carried by exactly ``ids`` (tags computed in order see
        the tags computed before them). Checkpointed locally, so a long chain of tags stays a short plan."""
        new = self.spark.createDataFrame(
            [(str(c), tag) for c in ids.to_pylist()], "customer_id STRING, tag STRING"
        )
        kept = self._tags.filter(self._tags.tag != tag)
        self._tags = kept.unionByName(new).localCheckpoint()
        self._tags.createOrReplaceTempView("tags")


@contextmanager
def spark_engine(
    settings: Settings, snapshot: Snapshot, *, master: str = DEFAULT_MASTER
) -> Iterator[SparkEngine]:
    yield SparkEngine(settings, snapshot, master=master)


def snapshot_at(folder: Path) -> Snapshot:
    """A snapshot folder written by ``omnibank export attributes`` (for a cluster job reading it)."""
    snap = Snapshot(folder, {})
    missing = [p.name for p in (snap.profiles, snap.tags, snap.merges, snap.scores) if not p.is_file()]
    if missing:
        raise AppError(f"{folder}: not an attributes export (missing {', '.join(missing)})")
    return snap


__all__ = [
    "DEFAULT_MASTER", "SparkEngine", "SparkUnavailable", "snapshot_at", "spark_engine", "stop_sessions",
    "to_spark_sql",
]  # fmt: skip
