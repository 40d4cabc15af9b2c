"""Backtest a campaign: apply it to a year of events from empty state, in memory, touching nothing, and
write every grant (``grants.jsonl``) with a cost summary. Each customer is assumed to claim a grant the
moment it is granted.

DuckDB picks the campaign's events (one parse of the file, deduplicated, in time order); the decision
function then sees them one by one. When no budget spans customers (every limit is per customer), each
customer's decisions depend on that customer's events alone: a large run is then split by customer over
worker processes, one per core, each applying the same decision function to its share in time order, and
their grants are merged back into the one order a single process writes (by event time, event id and
position within the event), so the output is the same byte for byte.

Before that, DuckDB leaves out the trigger events that cannot change a decision (:meth:`Decider.prune_plan`:
spends before a qualifying card, outside a window or a trigger's condition, and those a count threshold
does not need: of a weekly "3 spends", only the third is kept, counting for three). On dense card data
(100k holders, 10M transactions a year) the decision function then sees 1.3M events instead of 8.6M; a
run whose threshold is reached without its grant (a cap, a budget, points) is made again over every event,
so the grants are always those of the full run. A worker's grants travel to the merge as a key line and
the grant's own line, copied unparsed. Measured on the dense 1M-customer shape
(``benchmarks/bench_campaigns.py --shape dense``, a loaded 2-core machine): 306 s CPU before, 172 s after;
what is left is the decision function's work per grant (1.08M grants) and DuckDB's parse and pruning.

The backtest builds no :class:`Grant` objects: the decision function hands each grant's values to
:class:`_Emit` (:attr:`Decider.sink`), which writes the line ``Grant.to_contract`` would give from pieces
made once and counts the report's cells as integers (tests/campaigns/test_sink.py holds it to the objects'
lines, byte for byte). With the engine's own savings (an event's instant from whole seconds, face values
and cap periods looked up once per grant) the decision and writing of the dense quick shape's 126k events
and 109k grants went from 6.9 s to 4.4 s CPU (best of 3, loaded machine). On the full dense shape (load
average 5–9 on 2 cores, so wall times swing): 151 s CPU → 133 s, ÷ hand-written weekly SQL 4.30 → 3.20 in
CPU; what is left is still the decision function per grant (~70 s CPU over the workers) and DuckDB's parse
(~23 s) and pruning (~22 s)."""

from __future__ import annotations

import heapq
import multiprocessing
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import duckdb
import orjson
import pyarrow as pa
import pyarrow.ipc

from omnibank.campaigns.engine import CampaignState, Decider, Event, Refusal
from omnibank.campaigns.spec import CampaignSpec, compile_campaign
from omnibank.config import Settings
from omnibank.events.log import MEMORY_LIMIT, duck, sql_string
from omnibank.events.reader import ReadStats, event_sql, rows_from, types_sql, wanted_fields
from omnibank.kit.money import from_fen

PARALLEL_FROM = 200_000  # events: below this, worker processes cost more than they save
WARM_FROM_BYTES = 256 << 20  # an events file this large is split: its workers start before DuckDB reads it
BATCH = 100_000
# DuckDB's memory for a backtest (the log's connections have 1 GB): the pruning numbers and ranks every
# event of the year, and within 1 GB a dense 10M-event year spills to disk (_src 18 s → 12 s, the weekly
# ranks 8 s → 6.5 s with more); the worker processes hold little while DuckDB works, and peak stays < 4 GB
BACKTEST_MEMORY = "2560MB"


@dataclass
class SimulationReport:
    campaign: str
    events: int = 0
    grants: int = 0
    face_value: Decimal = Decimal(0)
    by_rule_month: dict[tuple[str, str], list[Any]] = field(default_factory=dict)  # → [items, face value]
    refusals: Counter[tuple[str, str]] = field(default_factory=Counter)  # (rule, reason) → items
    customers: int = 0
    source: ReadStats = field(default_factory=ReadStats)
    unfired: int = 0  # thresholds reached without their grant (a pruned run must be made again in full)

    def add(self, other: SimulationReport) -> None:
        """Fold in the report of a disjoint share of the customers."""
        self.events += other.events
        self.grants += other.grants
        self.face_value += other.face_value
        for k, (items, value) in other.by_rule_month.items():
            cell = self.by_rule_month.setdefault(k, [0, Decimal(0)])
            cell[0] += items
            cell[1] += value
        self.refusals.update(other.refusals)
        self.customers += other.customers
        self.unfired += other.unfired


def independent(spec: CampaignSpec) -> bool:
    """True when no budget spans customers, so customers can be decided apart."""
    return spec.budget is None and all(r.budget is None for r in spec.rules)


def simulate(
    spec: CampaignSpec,
    settings: Settings,
    *,
    events: Path | None,
    out: IO[bytes] | None = None,
    eligible: frozenset[str] | None = None,
    on_progress: Callable[[int], Any] | None = None,
    workers: int | None = None,
    parallel_from: int = PARALLEL_FROM,
    prune: bool = True,
) -> SimulationReport:
    """Run ``spec`` over ``events`` (a JSONL file; None: the data home's event log). ``workers`` (default:
    one per core) is used only when the campaign allows it and there are at least ``parallel_from`` events.

    With ``prune``, DuckDB first leaves out the trigger events that cannot change a decision
    (:meth:`Decider.prune_plan`); the grants go to a temporary file and are copied to ``out`` when the run
    proves the pruning exact (every threshold reached was granted), else the whole run is made again over
    every event. On dense card data (~100 transactions a holder a year) it halves the events the decision
    function sees."""
    if prune and Decider(compile_campaign(spec), settings.tz).prune_plan() is not None:
        with tempfile.TemporaryFile() as spool:
            report = _simulate(
                spec, settings, events, spool if out is not None else None, eligible, on_progress, workers,
                parallel_from, prune=True,
            )  # fmt: skip
            if not report.unfired:
                if out is not None:
                    spool.seek(0)
                    shutil.copyfileobj(spool, out, 1 << 20)
                return report
    return _simulate(spec, settings, events, out, eligible, on_progress, workers, parallel_from, prune=False)


def _simulate(
    spec: CampaignSpec,
    settings: Settings,
    events: Path | None,
    out: IO[bytes] | None,
    eligible: frozenset[str] | None,
    on_progress: Callable[[int], Any] | None,
    workers: int | None,
    parallel_from: int,
    *,
    prune: bool,
) -> SimulationReport:
    decider = Decider(compile_campaign(spec), settings.tz, eligible=eligible)
    report = SimulationReport(campaign=spec.id)
    wanted = wanted_fields(decider.columns)
    workers = workers if workers is not None else (os.cpu_count() or 1)
    con = duck(settings)
    con.execute(f"SET memory_limit = {sql_string(BACKTEST_MEMORY)}")  # the database's: put back below
    split = workers > 1 and independent(spec)
    # a large file will be split: start the workers now, so their start-up overlaps DuckDB's work
    warm = start_pool(workers) if split and events is not None and _size(events) >= WARM_FROM_BYTES else None
    plan = decider.prune_plan() if prune else None
    where = None
    if plan is not None:  # the events of other types, and those _prune keeps
        listed = ", ".join(sql_string(t) for t in sorted(plan[0]))
        where = f"type NOT IN ({listed}) OR event_id IN (SELECT event_id FROM _kept)"
    try:
        sql = event_sql(
            con,
            settings,
            fields=wanted,
            types=decider.types,
            where=where,
            holders=decider.holders_sql(),
            path=events,
            stats=report.source,
            ordered=not split and plan is None,
        )
        total = None
        if plan is not None:
            total, sql, counts = _prune(con, decider, plan, sql, ordered=not split)
            wanted = [*wanted, *counts]
        if split:
            con.execute(f"CREATE TEMP TABLE picked AS {sql}")
            picked = int(con.execute("SELECT count(*) FROM picked").fetchall()[0][0])
            if plan is not None:
                for table in ("_src", "_kept", *(f"_count{i}" for i in range(len(plan[1])))):
                    con.execute(f"DROP TABLE IF EXISTS {table}")
            if picked >= parallel_from:  # the events left to the decision function
                _parallel(con, spec, settings, wanted, workers, eligible, out, on_progress, report, warm)
                warm = None
                report.events = total if total is not None else report.events
                return report
            sql = "SELECT * FROM picked ORDER BY ts_us, event_id"
        source = rows_from(con.sql(sql).to_arrow_reader(BATCH), wanted, Event, stats=report.source)
        report.unfired += _run(decider, source, report, out, on_progress)
        report.events = total if total is not None else report.events
        return report
    finally:
        con.execute(f"SET memory_limit = {sql_string(MEMORY_LIMIT)}")
        con.close()
        if warm is not None:
            warm[0].shutdown(cancel_futures=True)


def _prune(
    con: duckdb.DuckDBPyConnection,
    decider: Decider,
    plan: tuple[list[str], list[tuple[str, str, int | None]]],
    sql: str,
    *,
    ordered: bool,
) -> tuple[int, str, list[str]]:
    """Prepare, on ``con``, what :meth:`Decider.prune_plan` leaves of the events that :func:`event_sql`
    made ``src`` of: the number of events before pruning, the query ``sql`` with each kept event's counts
    (fields ``_n_<rule>``), and those fields' names."""
    # the events are read once into a table (the pruning reads them again) and the parsed file dropped
    con.execute(f"CREATE TEMP TABLE _src AS SELECT * FROM src WHERE {types_sql(decider.types)}")
    con.execute("CREATE OR REPLACE TEMP VIEW src AS SELECT * FROM _src")
    con.execute("DROP TABLE IF EXISTS file_events")
    total = int(con.execute("SELECT count(*) FROM _src").fetchall()[0][0])
    kept = []
    for i, (_, rule_sql, goal) in enumerate(plan[1]):
        con.execute(f"CREATE TEMP TABLE _rule{i} AS {rule_sql}")
        kept.append(f"SELECT event_id FROM _rule{i}" + (f" WHERE _rank = {goal}" if goal is not None else ""))
    con.execute(f"CREATE TEMP TABLE _kept AS SELECT DISTINCT event_id FROM ({' UNION ALL '.join(kept)})")
    # a kept event of a count rule counts for itself and the events of its period left out before it
    joins, counts, columns = [], [], []
    for i, (rule_id, _, goal) in enumerate(plan[1]):
        if goal is not None:
            con.execute(
                f"CREATE TEMP TABLE _count{i} AS SELECT event_id, _rank - coalesce(lag(_rank) OVER "
                f"(PARTITION BY customer_id, _period ORDER BY _rank), 0) AS n FROM _rule{i} "
                f"WHERE _rank <= {goal} AND event_id IN (SELECT event_id FROM _kept)"
            )
            name = decider.count_field(rule_id)
            joins.append(f" LEFT JOIN _count{i} USING (event_id)")
            columns.append(f'_count{i}.n AS "{name}"')
            counts.append(name)
        con.execute(f"DROP TABLE _rule{i}")
    order = " ORDER BY q.ts_us, q.event_id" if ordered else ""
    selected = ", ".join(["q.*", *columns])
    return total, f"SELECT {selected} FROM ({sql}) q{''.join(joins)}{order}", counts


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _run(
    decider: Decider,
    source: Iterator[Event],
    report: SimulationReport,
    out: IO[bytes] | None,
    on_progress: Callable[[int], Any] | None,
    *,
    keyed: bool = False,
) -> int:
    """Apply the decision function to ``source``; with ``keyed``, each grant line follows a line holding
    its merge key (event time, event id, position within the event). Returns ``decider.unfired``.

    Grants reach :class:`_Emit` as values (:attr:`Decider.sink`), not as :class:`Grant` objects."""
    state = CampaignState()
    emit = _Emit(decider.spec.id, out.write if out is not None else None, keyed=keyed)
    before, decider.sink = decider.sink, emit
    decide = decider.decide
    refusals = report.refusals
    n = 0
    try:
        for event in source:
            n += 1
            if on_progress and n % 100_000 == 0:
                on_progress(n)
            emit.event = event
            decisions = decide(state, event)
            if decisions:
                for d in decisions:  # the grants went to emit
                    if isinstance(d, Refusal):
                        refusals[(d.rule, d.reason)] += d.items
    finally:
        decider.sink = before
    emit.close(report)
    report.events = n
    return decider.unfired


class _Emit:
    """The grants of :func:`_run`, from the decision function's values (:class:`GrantSink`): written as
    their ``grants.jsonl`` lines (the bytes of ``orjson.dumps(grant.to_contract()) + b"\n"``, put together
    from pieces made once: the campaign, rule and benefit, the face value, rate and stage, the ends of days)
    and counted. Building a :class:`Grant`, its contract dict and its line cost ~3x as much."""

    def __init__(self, campaign: str, write: Callable[[bytes], Any] | None, *, keyed: bool) -> None:
        self.campaign = campaign
        self.write = write
        self.keyed = keyed
        self.event: Event | None = None  # the event being decided (for the merge key)
        self.keyed_event: Event | None = None
        self.position = 0
        self.heads: dict[tuple[str, str], bytes] = {}
        self.tails: dict[tuple[int | None, Decimal | None, int | None], bytes] = {}
        self.moments: dict[int, tuple[datetime, bytes]] = {}  # id → (moment, its text): cached moments
        self.last: tuple[datetime | None, bytes] = (None, b"")
        self.cells: dict[tuple[str, int, int, int | None], int] = {}  # (rule, year, month, fen) → grants
        self.customers: set[str] = set()

    def __call__(
        self,
        customer_id: str,
        rule: str,
        benefit_id: str,
        granted_at: datetime,
        valid_from: datetime,
        valid_to: datetime | None,
        claim_by: datetime | None,
        face_value_fen: int | None,
        discount_rate: Decimal | None,
        stage: int | None,
        /,
    ) -> None:
        self.customers.add(customer_id)
        cell = (rule, granted_at.year, granted_at.month, face_value_fen)
        cells = self.cells
        cells[cell] = cells.get(cell, 0) + 1
        write = self.write
        if write is None:
            return
        last, at = self.last
        if granted_at is not last:
            at = granted_at.isoformat().encode()
            self.last = (granted_at, at)
        head = self.heads.get((rule, benefit_id))
        if head is None:
            head = self.heads[(rule, benefit_id)] = (
                b',"campaign":' + orjson.dumps(self.campaign) + b',"rule":' + orjson.dumps(rule)
                + b',"benefit":' + orjson.dumps(benefit_id) + b',"granted_at":"'
            )  # fmt: skip
        tail = self.tails.get((face_value_fen, discount_rate, stage))
        if tail is None:
            tail = self.tails[(face_value_fen, discount_rate, stage)] = self._tail(
                face_value_fen, discount_rate, stage
            )
        moments = self.moments
        if valid_to is None:
            to = b"null"
        else:
            cached = moments.get(id(valid_to))
            to = cached[1] if cached is not None and cached[0] is valid_to else self._text(valid_to)
        parts = [
            b'{"customer_id":',
            orjson.dumps(customer_id),
            head,
            at,
            b'","valid_from":"',
            at if valid_from is granted_at else self._text(valid_from)[1:-1],
            b'","valid_to":',
            to,
        ]
        if claim_by is not None:
            cached = moments.get(id(claim_by))
            parts += (
                b',"claim_by":',
                cached[1] if cached is not None and cached[0] is claim_by else self._text(claim_by),
            )
        parts.append(tail)
        if self.keyed:
            event = self.event
            assert event is not None
            if event is not self.keyed_event:
                self.keyed_event, self.position = event, 0
            parts.insert(0, orjson.dumps([event.ts_us, event.event_id, self.position]) + b"\n")
            self.position += 1
        write(b"".join(parts))

    def _text(self, moment: datetime) -> bytes:
        """``moment.isoformat()`` as a JSON string, kept for the moments the decision function caches (ends
        of days)."""
        cached = self.moments.get(id(moment))
        if cached is not None and cached[0] is moment:
            return cached[1]
        text = b'"' + moment.isoformat().encode() + b'"'
        if len(self.moments) >= 100_000:
            self.moments.clear()
        self.moments[id(moment)] = (moment, text)  # the moment is held: its id is not reused meanwhile
        return text

    @staticmethod
    def _tail(fen: int | None, rate: Decimal | None, stage: int | None) -> bytes:
        out = b""
        if fen is not None:
            out += b',"face_value":' + orjson.dumps(f"{from_fen(fen):.2f}")
        if rate is not None:
            out += b',"discount_rate":' + orjson.dumps(str(rate))
        if stage is not None:
            out += b',"stage":' + orjson.dumps(stage)
        return out + b"}\n"

    def close(self, report: SimulationReport) -> None:
        """Add the grants counted to ``report`` (its totals, and its cells in the order first granted)."""
        values: dict[int | None, Decimal] = {}
        for (rule, year, month, fen), n in self.cells.items():
            value = values.get(fen)
            if value is None:
                value = values[fen] = from_fen(fen) if fen is not None else Decimal(0)
            report.grants += n
            report.face_value += value * n
            cell = report.by_rule_month.setdefault((rule, f"{date(year, month, 1):%Y-%m}"), [0, Decimal(0)])
            cell[0] += n
            cell[1] += value * n
        report.customers = len(self.customers)


# ---------------------------------------------------------------------------------------------- workers
_progress: Any = None  # a shared counter, set in each worker process


def _init_worker(counter: Any) -> None:
    global _progress
    _progress = counter


def _tick(n: int) -> None:
    with _progress.get_lock():
        _progress.value += 100_000


def _share(
    spec: CampaignSpec,
    timezone: str,
    part: str,
    wanted: list[str],
    eligible: frozenset[str] | None,
    grants: str | None,
) -> SimulationReport:
    """A worker: the decision function over one share of the customers, read from an Arrow file in time
    order; grants written, keyed for the merge, to ``grants``."""
    decider = Decider(compile_campaign(spec), ZoneInfo(timezone), eligible=eligible)
    report = SimulationReport(campaign=spec.id)
    with pa.memory_map(part) as mapped:
        reader = pa.ipc.open_file(mapped)
        batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
        fh = open(grants, "wb") if grants else None  # noqa: SIM115 - closed below
        try:
            report.unfired += _run(
                decider, rows_from(batches, wanted, Event, stats=report.source), report, fh, _tick, keyed=True
            )
        finally:
            if fh is not None:
                fh.close()
    return report


def _warm() -> None:
    """Nothing: a worker that ran it has started and imported what a share needs."""


def start_pool(workers: int) -> tuple[ProcessPoolExecutor, Any]:
    """Worker processes (spawned: never fork a process that runs DuckDB threads), started now so that
    their start-up overlaps DuckDB's work; and their shared progress counter."""
    context = multiprocessing.get_context("spawn")
    counter = context.Value("q", 0)
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(counter,))
    for _ in range(workers):
        pool.submit(_warm)
    return pool, counter


def _parallel(
    con: duckdb.DuckDBPyConnection,
    spec: CampaignSpec,
    settings: Settings,
    wanted: list[str],
    workers: int,
    eligible: frozenset[str] | None,
    out: IO[bytes] | None,
    on_progress: Callable[[int], Any] | None,
    report: SimulationReport,
    warm: tuple[ProcessPoolExecutor, Any] | None,
) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="omnibank-simulate-"))
    pool, counter = warm if warm is not None else start_pool(workers)
    try:
        parts = []
        for i in range(workers):
            part = tmp / f"part-{i}.arrow"
            share = con.sql(
                f"SELECT * FROM picked WHERE hash(customer_id) % {workers} = {i} ORDER BY ts_us, event_id"
            ).arrow()
            table = share if isinstance(share, pa.Table) else share.read_all()
            with pa.OSFile(str(part), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table, max_chunksize=BATCH)
            del table, share
            parts.append(part)
        con.execute("DROP TABLE picked")
        grants = [str(tmp / f"grants-{i}.jsonl") if out is not None else None for i in range(workers)]
        futures = [
            pool.submit(_share, spec, settings.timezone, str(p), wanted, eligible, g)
            for p, g in zip(parts, grants, strict=True)
        ]
        reported = 0
        while wait(futures, timeout=0.5).not_done:
            if on_progress is not None and counter.value > reported:
                reported = counter.value
                on_progress(reported)
        for f in futures:
            result = f.result()
            report.add(result)
            report.source.read += result.source.read
        if out is not None:
            _merge([Path(g) for g in grants if g], out)
    finally:
        pool.shutdown(cancel_futures=True)
        shutil.rmtree(tmp, ignore_errors=True)


def _keyed(lines: IO[bytes]) -> Iterator[tuple[tuple[int, str, int], bytes]]:
    """A worker's grants: (merge key, grant line) from its pairs of lines."""
    for key in lines:
        ts_us, event_id, position = orjson.loads(key)
        yield (ts_us, event_id, position), next(lines)


def _merge(files: list[Path], out: IO[bytes]) -> None:
    """Write the workers' keyed grants as one file in the order a single process writes them."""
    handles = [f.open("rb") for f in files]
    try:
        streams = [_keyed(h) for h in handles]
        # a key names one grant of one event, and an event is one worker's: keys never tie, so the pairs
        # compare by their keys alone (no key function to call per grant)
        for _, line in heapq.merge(*streams):
            out.write(line)
    finally:
        for h in handles:
            h.close()
