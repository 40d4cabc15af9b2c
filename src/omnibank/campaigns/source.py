"""Events for a campaign run, in time order: from an ``events.jsonl`` file (a backtest on last year's
data, touching nothing) or from the data home's event log.

A file is read by DuckDB with the contract's fields; a line that is not usable (not JSON, no id, type,
customer or readable time) is skipped and counted; a repeated ``event_id`` counts once (its first line),
as in the event log."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from omnibank.campaigns.engine import Event
from omnibank.config import Settings
from omnibank.errors import InputRefused
from omnibank.events.log import JSON_FIELD_TYPES, TYPED_FIELDS, EventLog, duck, sql_string

FIELDS = ("channel", *TYPED_FIELDS, "weekday")  # what an Event's fields may hold


@dataclass
class SourceStats:
    read: int = 0  # events of the campaign's types, in order
    lines: int = 0  # non-blank lines of the file
    unusable: int = 0  # lines that are not a JSON event with id, type, customer and a readable time


def _typed(fields: list[str]) -> str:
    """The event columns of a JSONL line typed as the event log types them (only ``fields`` of the typed
    ones: every column read costs)."""
    out = ["event_id", "type", "customer_id", "TRY_CAST(ts AS TIMESTAMPTZ) AS ts"]
    for f in fields:
        if f == "amount":
            out.append("TRY_CAST(amount AS DECIMAL(18,2)) AS amount")
        elif f == "is_primary":
            out.append('"primary" AS is_primary')
        elif f != "weekday":
            out.append(f)
    return ", ".join(out)


def _json_columns(fields: list[str]) -> str:
    raw = {"is_primary": "primary"}
    names = ["event_id", "type", "customer_id", "ts", *(raw.get(f, f) for f in fields if f != "weekday")]
    return "{" + ", ".join(f"{sql_string(k)}: {sql_string(JSON_FIELD_TYPES[k])}" for k in names) + "}"


def _output(fields: list[str], local_date: str) -> str:
    """The columns handed to Python. Dates travel as days since the epoch and amounts as integer fen:
    turning Arrow dates and decimals into Python objects row by row costs more than the whole decision
    function; ints are cheap, and the few distinct values are turned into ``date``/``Decimal`` once."""
    out = [
        "event_id",
        "type",
        "customer_id",
        "epoch_us(ts) AS ts_us",
        f"date_diff('day', DATE '1970-01-01', {local_date}) AS local_day",
    ]
    for f in fields:
        if f == "amount":
            out.append("CAST(amount * 100 AS BIGINT) AS amount")
        elif f == "weekday":
            out.append("isodow(ts) AS weekday")
        else:
            out.append(f)
    return ", ".join(out)


def _select(
    source: str,
    types: set[str],
    fields: list[str],
    holders: str | None,
    *,
    from_file: bool,
    ordered: bool = True,
) -> str:
    """Events of ``types`` in time order; with ``holders`` (a condition over card.issued fields), only
    the events of customers with such a card (and their card events): nobody else can qualify. A file's
    repeated ``event_id`` counts once, its first line (the log is deduplicated already)."""
    listed = ", ".join(sql_string(t) for t in sorted(types))
    keep = ""
    if holders is not None:
        cards = f"SELECT customer_id FROM {source} WHERE type = 'card.issued' AND ({holders})"
        keep = f" AND customer_id IN ({cards})"
    order = "ORDER BY ts, event_id" if ordered else ""
    if from_file:  # the rows of _file_rows(): usable events of the types, numbered by line
        return f"""
        SELECT {_output(fields, "CAST(ts AS DATE)")}
        FROM {source} WHERE TRUE{keep}
        QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY line) = 1
        {order}
        """
    return f"""
        SELECT {_output(fields, "local_date")}
        FROM {source} WHERE type IN ({listed}){keep} {order}
    """


def _file_rows(
    con: duckdb.DuckDBPyConnection, path: Path, types: set[str], fields: list[str], stats: SourceStats
) -> str:
    """Parse the JSONL file once into a temporary table of the usable events of ``types``, in file order
    (for "the first line of a repeated id wins"), beside the lines that are not usable (DuckDB reads a line
    that is not JSON as a row of NULLs), which are only counted; returns a query of the usable ones."""
    columns = _json_columns(fields)
    source = (
        f"read_json({sql_string(str(path))}, format = 'newline_delimited', columns = {columns}, "
        "ignore_errors = true)"
    )
    listed = ", ".join(sql_string(t) for t in sorted(types))
    counter = threading.Thread(target=_line_counts, args=(path, stats), daemon=True)
    counter.start()
    con.execute("SET preserve_insertion_order = true")  # the rowid order below is the file's
    con.execute(f"""
        CREATE TEMP TABLE file_events AS
        SELECT * FROM (
            SELECT *, coalesce(event_id IS NOT NULL AND type IS NOT NULL AND customer_id IS NOT NULL
                AND ts IS NOT NULL, false) AS usable
            FROM (SELECT {_typed(fields)} FROM {source})
        )
        WHERE type IN ({listed}) OR NOT usable
    """)
    row = con.execute("SELECT count(*) FROM file_events WHERE NOT usable").fetchall()[0]
    counter.join()
    stats.unusable = int(row[0])
    # the table keeps the file's order (insertion order is preserved, also when DuckDB parses the file on
    # several threads), so its rowid numbers the kept lines in file order; a window numbering the lines
    # while parsing would make the parse single-threaded
    return "(SELECT *, rowid AS line FROM file_events WHERE usable)"


def _line_counts(path: Path, stats: SourceStats, chunk_size: int = 1 << 24) -> None:
    """Count the file's non-blank lines (beside the parse, on the other core; numpy counts newlines several
    times faster than ``bytes.count``, which matters on a file of gigabytes)."""
    lines = 0
    last = True  # the byte before the current chunk was a newline (or the file starts)
    tail = b""
    with path.open("rb") as fh:
        while chunk := fh.read(chunk_size):
            newline = np.frombuffer(chunk, np.uint8) == 10
            lines += int(np.count_nonzero(newline)) - int(np.count_nonzero(newline[1:] & newline[:-1]))
            lines -= int(last and bool(newline[0]))  # a blank line first, or across two chunks
            last = bool(newline[-1])
            tail = chunk[-1:]
    if tail and tail != b"\n":  # a last line without its newline
        lines += 1
    stats.lines = lines


def event_sql(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    *,
    types: set[str],
    wanted: list[str],
    holders: str | None,
    path: Path | None,
    files: list[Path] | None,
    stats: SourceStats,
    ordered: bool = True,
) -> str:
    """The query, on ``con``, of the events a campaign reads (columns as :func:`events_from` takes them),
    in time order unless not ``ordered``."""
    if path is not None:
        if not path.is_file():
            raise InputRefused(f"{path}: no such file")
        return _select(
            _file_rows(con, path, types, wanted, stats),
            types,
            wanted,
            holders,
            from_file=True,
            ordered=ordered,
        )
    if files is not None:
        listing = ", ".join(sql_string(str(f)) for f in files)
        scan = f"read_parquet([{listing}], hive_partitioning = true, union_by_name = true)"
        return _select(scan, types, wanted, holders, from_file=False, ordered=ordered)
    return _select(EventLog(settings).scan_sql(), types, wanted, holders, from_file=False, ordered=ordered)


def wanted_fields(fields: list[str] | None) -> list[str]:
    return [f for f in FIELDS if fields is None or f in fields]


def events_from(batches: Iterable[pa.RecordBatch], wanted: list[str], stats: SourceStats) -> Iterator[Event]:
    """Events from Arrow batches of :func:`event_sql`'s columns."""
    days: dict[int, date] = {}
    fens: dict[int, Decimal] = {}
    for rb in batches:
        cols = rb.to_pydict()
        stats.read += rb.num_rows
        if "amount" in cols:
            cols["amount"] = [
                None if v is None else fens.get(v) or fens.setdefault(v, Decimal(v).scaleb(-2))
                for v in cols["amount"]
            ]
        field_rows = zip(*(cols[f] for f in wanted), strict=True) if wanted else iter(lambda: (), None)
        for eid, etype, cid, ts, day, values in zip(
            cols["event_id"],
            cols["type"],
            cols["customer_id"],
            cols["ts_us"],
            cols["local_day"],
            field_rows,
            strict=False,
        ):
            local = days.get(day)
            if local is None:
                local = days[day] = _EPOCH_DAY + timedelta(days=day)
            yield Event(eid, etype, cid, ts, local, dict(zip(wanted, values)))  # noqa: B905 - same length


def read_events(
    settings: Settings,
    *,
    types: set[str],
    fields: list[str] | None = None,
    holders: str | None = None,
    path: Path | None = None,
    files: list[Path] | None = None,
    stats: SourceStats | None = None,
    batch: int = 100_000,
) -> Iterator[Event]:
    """Events of ``types`` in time order (then by id), from a JSONL file ``path``, from some of the event
    log's ``files``, or (both None) from the whole event log."""
    stats = stats if stats is not None else SourceStats()
    wanted = wanted_fields(fields)
    con = duck(settings)
    try:
        sql = event_sql(
            con, settings, types=types, wanted=wanted, holders=holders, path=path, files=files, stats=stats
        )
        yield from events_from(con.sql(sql).to_arrow_reader(batch), wanted, stats)
    finally:
        con.close()


_EPOCH_DAY = date(1970, 1, 1)
