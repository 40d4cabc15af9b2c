"""Backtest a campaign on Apache Spark: the one decision function applied per customer over the event log.

When no budget spans customers (:func:`omnibank.campaigns.simulate.independent`), a customer's decisions
depend on that customer's events alone. Spark then reads the log's Parquet files (the files
:meth:`omnibank.events.log.EventLog.files` lists; on a cluster, storage every executor reads), keeps the
events :func:`omnibank.events.reader.event_sql` keeps for the log (the campaign's event types, of card
holders who can qualify), hash-partitions them by customer and sorts each partition by customer, time and
event id. Each partition is one Python task (``mapInArrow``): its Arrow batches become :class:`Event` rows
through the reader's own :func:`omnibank.events.reader.rows_from`, and the local backtest's own loop
(``simulate._run``, keyed as its worker processes key their grants) applies the same :class:`Decider` to
them, a few thousand customers at a time so that a task holds only their state. A task hands back its grant
lines keyed by event time, event id and position within the event, and one row with its share of the
report. Spark sorts the grants by that key, which is the order a
single process writes, and the driver streams them (``toLocalIterator``: one partition in memory at a time)
into ``grants.jsonl``, byte for byte what :func:`omnibank.campaigns.simulate.simulate` writes.

Why ``repartition`` + ``sortWithinPartitions`` + ``mapInArrow`` rather than ``groupBy().applyInPandas``:
a group per customer costs a pandas frame per customer (millions of them), and pandas turns a nullable
integer column (points, quantity, fen amounts) into floats, which the decision function would then see;
Arrow batches carry the types as the reader's DuckDB path does, and the sort spills to disk as Spark's
sorts do, so no partition needs to fit in memory.

A campaign with a budget (campaign-wide or of a rule) is refused: which grant a budget refuses depends on
every earlier grant to anyone, so it needs one pass over all events in time order (``--engine duckdb``).
An events file (``--events FILE``) is refused too: the file's own rules (the first line of a repeated id
wins, unusable lines skipped and counted, personal fields tokenised) are the loader's, so it is loaded
into the log first (``omnibank load events FILE``) and Spark reads the log.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import orjson

from omnibank.campaigns.engine import Decider, Event
from omnibank.campaigns.simulate import SimulationReport, _run
from omnibank.campaigns.spec import CampaignSpec, compile_campaign
from omnibank.config import Settings
from omnibank.errors import InputRefused
from omnibank.events.log import COLUMN_NAMES, EventLog
from omnibank.events.reader import rows_from, types_sql, wanted_fields
from omnibank.segments.spark import DEFAULT_MASTER, _session, to_spark_sql

#: what each task hands back: a grant (``g``: its merge key and line) or its share of the report (``r``)
OUTPUT_SCHEMA = "kind STRING, ts_us BIGINT, event_id STRING, position INT, line BINARY"
OUT_BATCH = 10_000  # grant rows per Arrow batch a task yields
CUSTOMERS_PER_RUN = 2_000  # customers a task decides at once (a dense card year: ~100 grants each at most)

#: the reader's fields as Spark SQL over the log's columns (the others are read as they are); a field that
#: no file of the log has yet is NULL (:func:`_columns`)
_SPARK_FIELDS = {
    "amount": "CAST(amount * 100 AS BIGINT)",  # integer fen, exact (DECIMAL(18,2) * 100 is DECIMAL(22,2))
    "weekday": "weekday(ts) + 1",  # the bank-local ISO day: the session runs in the bank's zone
}
_NULL_TYPES = {
    "amount": "BIGINT", "points": "BIGINT", "quantity": "BIGINT", "duration_s": "DOUBLE",
    "is_primary": "BOOLEAN", "new_customer": "BOOLEAN",
}  # fmt: skip


def check_runs_on_spark(spec: CampaignSpec, *, events: Path | None = None) -> None:
    """Raise :class:`InputRefused` with the reason when ``spec`` cannot run on Spark: a budget spans
    customers (named), or the events come from a file (``events``) rather than the log."""
    if events is not None:
        raise InputRefused(
            f"{events}: --engine spark reads the data home's event log, not an events file; load it first: "
            f"omnibank load events {events}"
        )
    what = []
    if spec.budget is not None:
        what.append(f"the campaign-wide budget ({_budget_text(spec.budget)})")
    for rule in spec.rules:
        if rule.budget is not None:
            what.append(f"the budget of rule {rule.id} ({_budget_text(rule.budget)})")
    if what:
        raise InputRefused(
            f"campaign {spec.id}: --engine spark decides each customer apart and cannot apply "
            f"{' and '.join(what)}: a budget shared by all customers refuses a grant according to every "
            "earlier grant to anyone, which needs one pass over all events in time order. Run it with "
            "--engine duckdb"
        )


def _budget_text(budget: Any) -> str:
    parts = []
    if budget.count is not None:
        parts.append(f"{budget.count:,} items")
    if budget.face_value is not None:
        parts.append(f"face value {budget.face_value} CNY")
    return ", ".join(parts) or "no limit given"


def simulate_on_spark(
    spec: CampaignSpec,
    settings: Settings,
    *,
    out: IO[bytes] | None = None,
    eligible: frozenset[str] | None = None,
    master: str = DEFAULT_MASTER,
    on_progress: Callable[[int], Any] | None = None,
    events: Path | None = None,
    customers_per_run: int = CUSTOMERS_PER_RUN,
) -> SimulationReport:
    """Run ``spec`` over the data home's event log on Spark (``master``: ``local[*]`` or a cluster's URL)
    and write its grants to ``out`` (a binary file, or None for the report only); see the module's
    docstring. ``eligible`` limits who takes part, as in :func:`omnibank.campaigns.simulate.simulate`.
    ``events`` (a JSONL file) is refused: Spark reads the log. ``on_progress`` hears the number of events
    decided once the decisions are made. A task decides ``customers_per_run`` customers at a time."""
    check_runs_on_spark(spec, events=events)
    decider = Decider(compile_campaign(spec), settings.tz, eligible=eligible)
    report = SimulationReport(campaign=spec.id)
    log = EventLog(settings)
    files = log.files()
    if not files or not decider.types:
        return report
    wanted = wanted_fields(decider.columns)
    spark = _session(master, settings.timezone)
    raw = spark.read.option("basePath", str(log.dir)).option("mergeSchema", "true")
    view = "omnibank_campaign_events_" + re.sub(r"\W", "_", spec.id)
    raw.parquet(*(str(f) for f in files)).createOrReplaceTempView(view)
    query = _query(view, set(spark.table(view).columns), wanted, decider)
    shared = spark.sparkContext.broadcast(eligible) if eligible is not None else None
    decide = functools.partial(_decide, spec, settings.timezone, wanted, shared, customers_per_run)
    decided = (
        spark.sql(query)
        .repartition("customer_id")
        .sortWithinPartitions("customer_id", "ts_us", "event_id")
        .mapInArrow(decide, OUTPUT_SCHEMA)
    )
    from pyspark import StorageLevel

    decided.persist(StorageLevel.MEMORY_AND_DISK)  # decided once: read for the report, then for the grants
    try:
        for row in decided.filter("kind = 'r'").select("line").collect():
            _fold(report, orjson.loads(bytes(row[0])))
        if on_progress is not None:
            on_progress(report.events)
        if out is not None and report.grants:
            grants = decided.filter("kind = 'g'").orderBy("ts_us", "event_id", "position").select("line")
            write = out.write
            for row in grants.toLocalIterator():
                write(row[0])
    finally:
        decided.unpersist()
        spark.catalog.dropTempView(view)
        if shared is not None:
            shared.destroy()
    return report


def _columns(present: set[str], wanted: list[str]) -> list[str]:
    """The select list: :func:`omnibank.events.reader.event_sql`'s columns for ``wanted``, in Spark SQL."""
    cols = [
        "event_id",
        "type",
        "customer_id",
        "unix_micros(ts) AS ts_us",
        "unix_date(local_date) AS local_day",
    ]
    for f in wanted:
        source = "ts" if f == "weekday" else f
        if source not in present:
            cols.append(f"CAST(NULL AS {_NULL_TYPES.get(f, 'STRING')}) AS {f}")
        else:
            cols.append(f"{_SPARK_FIELDS[f]} AS {f}" if f in _SPARK_FIELDS else f)
    return cols


def _query(view: str, present: set[str], wanted: list[str], decider: Decider) -> str:
    """The events :func:`omnibank.events.reader.event_sql` picks from the log for ``decider``: of its types,
    of card holders when every rule needs a card (the holders' condition transpiled by sqlglot, as the
    segments' Spark engine does)."""
    missing = [c for c in ("event_id", "type", "customer_id", "ts", "local_date") if c not in present]
    if missing:  # not a log the loader wrote
        raise InputRefused(f"{view}: the event log's files lack {', '.join(missing)} (of {COLUMN_NAMES})")
    conditions = [types_sql(decider.types)]
    holders = decider.holders_sql()
    if holders is not None:
        inner = to_spark_sql(f"SELECT customer_id FROM {view} WHERE type = 'card.issued' AND ({holders})")
        conditions.append(f"customer_id IN ({inner})")
    return f"SELECT {', '.join(_columns(present, wanted))} FROM {view} WHERE {' AND '.join(conditions)}"


def _decide(
    spec: CampaignSpec, timezone: str, wanted: list[str], shared: Any, customers: int, batches: Iterator[Any]
) -> Iterator[Any]:
    """One Spark task: the decision function over a partition's events (whole customers, each in time
    order) through the local backtest's own ``_run``, ``customers`` customers at a time (their
    state and keyed grant lines are all a task holds); yields Arrow batches of :data:`OUTPUT_SCHEMA`: the
    keyed grant lines, then one row with the task's share of the report."""
    import pyarrow as pa

    eligible = shared.value if shared is not None else None
    decider = Decider(compile_campaign(spec), ZoneInfo(timezone), eligible=eligible)
    report = SimulationReport(campaign=spec.id)
    schema = pa.schema(
        [("kind", pa.string()), ("ts_us", pa.int64()), ("event_id", pa.string()), ("position", pa.int32()),
         ("line", pa.binary())]
    )  # fmt: skip
    runs = _Runs(rows_from(batches, wanted, Event), customers)
    while runs.more():
        piece = SimulationReport(campaign=spec.id)
        spool = io.BytesIO()
        _run(decider, runs.run(), piece, spool, None, keyed=True)
        report.add(piece)
        pairs = spool.getvalue().split(b"\n")[:-1]  # key, line, key, line… (a JSON line has no raw newline)
        keys = [orjson.loads(k) for k in pairs[0::2]]
        lines = [line + b"\n" for line in pairs[1::2]]
        for i in range(0, len(lines), OUT_BATCH):
            part = keys[i : i + OUT_BATCH]
            yield pa.record_batch(
                [pa.array(["g"] * len(part), pa.string()), pa.array([k[0] for k in part], pa.int64()),
                 pa.array([k[1] for k in part], pa.string()), pa.array([k[2] for k in part], pa.int32()),
                 pa.array(lines[i : i + OUT_BATCH], pa.binary())],
                schema=schema,
            )  # fmt: skip
    report.unfired = decider.unfired
    yield pa.record_batch(
        [pa.array(["r"]), pa.array([None], pa.int64()), pa.array([None], pa.string()),
         pa.array([None], pa.int32()), pa.array([_piece(report)], pa.binary())],
        schema=schema,
    )  # fmt: skip


class _Runs:
    """A task's events (customers one after another) cut into runs of at most ``customers`` customers."""

    def __init__(self, events: Iterator[Event], customers: int) -> None:
        self.events = events
        self.customers = customers
        self.head: Event | None = next(events, None)  # the first event not yet handed out

    def more(self) -> bool:
        return self.head is not None

    def run(self) -> Iterator[Event]:
        seen, current = 0, None
        while (event := self.head) is not None:
            if event.customer_id != current:
                if seen == self.customers:
                    return
                seen, current = seen + 1, event.customer_id
            yield event
            self.head = next(self.events, None)


def _piece(report: SimulationReport) -> bytes:
    """A task's share of the report, as JSON (decimals as text)."""
    return orjson.dumps(
        {
            "events": report.events,
            "grants": report.grants,
            "face_value": str(report.face_value),
            "by_rule_month": [[r, m, items, str(v)] for (r, m), (items, v) in report.by_rule_month.items()],
            "refusals": [[r, why, items] for (r, why), items in report.refusals.items()],
            "customers": report.customers,
            "unfired": report.unfired,
        }
    )


def _fold(report: SimulationReport, piece: dict[str, Any]) -> None:
    """Add a task's share (:func:`_piece`) to ``report`` (tasks hold disjoint customers)."""
    share = SimulationReport(
        campaign=report.campaign,
        events=piece["events"],
        grants=piece["grants"],
        face_value=Decimal(piece["face_value"]),
        by_rule_month={(r, m): [items, Decimal(v)] for r, m, items, v in piece["by_rule_month"]},
        customers=piece["customers"],
        unfired=piece["unfired"],
    )
    for r, why, items in piece["refusals"]:
        share.refusals[(r, why)] += items
    report.add(share)
    report.source.read += share.events


__all__ = ["OUTPUT_SCHEMA", "check_runs_on_spark", "simulate_on_spark"]
