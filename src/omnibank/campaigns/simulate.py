"""Backtest a campaign: apply it to a year of events from empty state, in memory, touching nothing, and
write every grant (``grants.jsonl``) with a cost summary. Each customer is assumed to claim a grant the
moment it is granted.

DuckDB picks the campaign's events (one parse of the file, deduplicated, in time order); the decision
function then sees them one by one. When no budget spans customers (every limit is per customer), each
customer's decisions depend on that customer's events alone: a large run is then split by customer over
worker processes, one per core, each applying the same decision function to its share in time order, and
their grants are merged back into the one order a single process writes (by event time, event id and
position within the event), so the output is the same byte for byte."""

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
from decimal import Decimal
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import duckdb
import orjson
import pyarrow as pa
import pyarrow.ipc

from omnibank.benefits.grant import Grant
from omnibank.campaigns.engine import CampaignState, Decider, Event, Refusal
from omnibank.campaigns.spec import CampaignSpec, compile_campaign
from omnibank.config import Settings
from omnibank.events.log import duck
from omnibank.events.reader import ReadStats, event_sql, rows_from, wanted_fields
from omnibank.kit.money import from_fen

PARALLEL_FROM = 200_000  # events: below this, worker processes cost more than they save
WARM_FROM_BYTES = 256 << 20  # an events file this large is split: its workers start before DuckDB reads it
BATCH = 100_000


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
) -> SimulationReport:
    """Run ``spec`` over ``events`` (a JSONL file; None: the data home's event log). ``workers`` (default:
    one per core) is used only when the campaign allows it and there are at least ``parallel_from`` events."""
    decider = Decider(compile_campaign(spec), settings.tz, eligible=eligible)
    report = SimulationReport(campaign=spec.id)
    wanted = wanted_fields(decider.columns)
    workers = workers if workers is not None else (os.cpu_count() or 1)
    con = duck(settings)
    split = workers > 1 and independent(spec)
    # a large file will be split: start the workers now, so their start-up overlaps DuckDB's work
    warm = start_pool(workers) if split and events is not None and _size(events) >= WARM_FROM_BYTES else None
    try:
        sql = event_sql(
            con,
            settings,
            fields=wanted,
            types=decider.types,
            holders=decider.holders_sql(),
            path=events,
            stats=report.source,
            ordered=not split,
        )
        if split:
            con.execute(f"CREATE TEMP TABLE picked AS {sql}")
            total = int(con.execute("SELECT count(*) FROM picked").fetchall()[0][0])
            if total >= parallel_from:
                _parallel(con, spec, settings, wanted, workers, eligible, out, on_progress, report, warm)
                warm = None
                return report
            sql = "SELECT * FROM picked ORDER BY ts_us, event_id"
        source = rows_from(con.sql(sql).to_arrow_reader(BATCH), wanted, Event, stats=report.source)
        _run(decider, source, report, out, on_progress)
        return report
    finally:
        con.close()
        if warm is not None:
            warm[0].shutdown(cancel_futures=True)


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
) -> None:
    """Apply the decision function to ``source``; with ``keyed``, each grant line leads with its merge key
    (event time, event id, position within the event)."""
    state = CampaignState()
    granted: set[str] = set()
    n = 0
    for event in source:
        n += 1
        if on_progress and n % 100_000 == 0:
            on_progress(n)
        position = 0
        for d in decider.decide(state, event):
            if isinstance(d, Refusal):
                report.refusals[(d.rule, d.reason)] += d.items
                continue
            _count(report, d)
            granted.add(d.customer_id)
            if out is not None:
                if keyed:
                    out.write(orjson.dumps([event.ts_us, event.event_id, position, d.to_contract()]) + b"\n")
                    position += 1
                else:
                    out.write(orjson.dumps(d.to_contract()) + b"\n")
    report.events = n
    report.customers = len(granted)


def _count(report: SimulationReport, g: Grant) -> None:
    report.grants += 1
    value = from_fen(g.face_value_fen) if g.face_value_fen is not None else Decimal(0)
    report.face_value += value
    cell = report.by_rule_month.setdefault((g.rule, f"{g.granted_at:%Y-%m}"), [0, Decimal(0)])
    cell[0] += 1
    cell[1] += value


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
            _run(
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


def _merge(files: list[Path], out: IO[bytes]) -> None:
    """Write the workers' keyed grants as one file in the order a single process writes them."""
    handles = [f.open("rb") for f in files]
    try:
        streams = [map(orjson.loads, h) for h in handles]
        for _, _, _, grant in heapq.merge(*streams, key=lambda r: (r[0], r[1], r[2])):
            out.write(orjson.dumps(grant) + b"\n")
    finally:
        for h in handles:
            h.close()
