"""The one reader of events with typed columns: from an ``events.jsonl`` file (a backtest or a simulation on
last year's data, touching nothing), from some files of the event log (a live campaign or the journey
worker applies the log file by file), or from the whole log. Campaigns, journeys and the customer-facts
builder (:mod:`omnibank.segments.facts`) all read through it.

What it selects: events of some ``types``, matching a condition built by the platform (``where``, SQL over
the columns below, never user text), of card holders (``holders``), in a time window (``since`` ..
``until``), of some customers (``customers``: a mapping also renames merged customers to their survivors).
What it yields: one row per event, in time order (then by id), made by ``make`` from ``event_id, type,
customer_id, ts_us, local_date, fields`` (:class:`EventRow` unless an engine has its own tuple of that
shape); ``fields`` holds the log's typed columns: ``amount`` a ``Decimal``, ``local_date`` the bank-local
day, ``weekday`` its ISO day, ``is_primary`` for the contract's ``primary``, and with ``platform`` the
fields of platform events (receipts: ``message_id``, ``journey``, ``step``; leads: ``lead_id``,
``staff_id``, ``source``), which the log keeps in the stored line (``payload``) and a file has as fields.

A file is parsed once by DuckDB with the contract's fields; a line that is not usable (not JSON, no id,
type, customer or readable time) is skipped (and counted when ``stats`` is asked for); a repeated
``event_id`` counts once (its first line), as in the event log. Rows travel as Arrow batches, streamed:
a year of a bank's events never sits in memory at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pyarrow as pa

from omnibank.config import Settings
from omnibank.errors import InputRefused
from omnibank.events.log import COLUMNS, JSON_FIELD_TYPES, TYPED_FIELDS, EventLog, duck, sql_string
from omnibank.kit.money import fen_sql, from_fen

#: the fields an event row may hold: the channel, the log's typed columns and the bank-local ISO weekday
FIELDS = ("channel", *TYPED_FIELDS, "weekday")
#: fields of platform events (receipts, leads), read with ``platform=True``
PLATFORM_FIELDS = ("journey", "step", "message_id", "lead_id", "staff_id", "source")
#: the fields each known type may fill: a ``sparse`` read looks only at these (others: at every field)
TYPE_FIELDS: dict[str, tuple[str, ...]] = {
    "card.issued": ("channel", "card_id", "product", "tier", "is_primary", "new_customer"),
    "card.transaction": ("channel", "amount", "card_id", "merchant", "mcc"),
    "points.earned": ("channel", "points"),
    "points.redeem": ("channel", "reward", "quantity"),
    "app.product_view": ("channel", "product_id", "duration_s"),
    "app.login": ("channel",),
    "installment.offered": ("channel", "amount", "card_id"),
    "installment.accepted": ("channel", "amount", "card_id", "quantity"),
}
_FILE_TYPES = {**JSON_FIELD_TYPES, **{f: "VARCHAR" for f in PLATFORM_FIELDS}}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = date(1970, 1, 1)

R = TypeVar("R")
#: builds a row from ``event_id, type, customer_id, ts_us, local_date, fields``
RowMaker = Callable[[str, str, str, int, date, dict[str, Any]], R]


class EventRow(NamedTuple):
    """One event (a tuple: millions of them are made in a backtest)."""

    event_id: str
    type: str
    customer_id: str
    ts_us: int  # the instant, in microseconds since the epoch (UTC)
    local_date: date  # its bank-local day
    fields: Mapping[str, Any]  # channel, the log's typed columns (amount a Decimal, …), weekday

    def at(self, tz: ZoneInfo) -> datetime:
        """The instant as an aware datetime in ``tz``."""
        return (_EPOCH + timedelta(microseconds=self.ts_us)).astimezone(tz)


@dataclass
class ReadStats:
    read: int = 0  # rows yielded
    lines: int = 0  # non-blank lines of the file
    unusable: int = 0  # lines that are not a JSON event with id, type, customer and a readable time


def wanted_fields(fields: Collection[str] | None) -> list[str]:
    """The fields to read, in :data:`FIELDS` order: those named (None: all). Every column read costs."""
    return [f for f in FIELDS if fields is None or f in fields]


def types_sql(types: Collection[str]) -> str:
    """A condition: the event is of one of ``types``."""
    return f"type IN ({', '.join(sql_string(t) for t in sorted(types)) or 'NULL'})"


def _file_columns(fields: list[str], platform: bool) -> tuple[str, str]:
    """The JSON columns to parse (DuckDB's ``columns`` struct) and the typed select over them (only
    ``fields``: every column parsed costs)."""
    raw = {"is_primary": "primary"}
    names = ["event_id", "type", "customer_id", "ts"]
    typed = ["event_id", "type", "customer_id", "TRY_CAST(ts AS TIMESTAMPTZ) AS ts"]
    for f in fields:
        if f == "weekday":
            continue
        names.append(raw.get(f, f))
        if f == "amount":
            typed.append("TRY_CAST(amount AS DECIMAL(18,2)) AS amount")
        elif f == "is_primary":
            typed.append('"primary" AS is_primary')
        else:
            typed.append(f)
    if platform:
        extra = [f for f in PLATFORM_FIELDS if f not in names]
        names += extra
        typed += extra
    columns = "{" + ", ".join(f"{sql_string(k)}: {sql_string(_FILE_TYPES[k])}" for k in names) + "}"
    return columns, ", ".join(typed)


def _file_source(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    types: Collection[str] | None,
    fields: list[str],
    platform: bool,
    stats: ReadStats | None,
) -> str:
    """Parse the JSONL file once into a temporary table of its usable events (of ``types``), in file order
    (for "the first line of a repeated id wins"), beside the lines that are not usable when they are to be
    counted (DuckDB reads a line that is not JSON as a row of NULLs); returns the relation of the usable
    lines, in file order (``_line``), with ``local_date`` (:func:`event_sql` keeps the first of a repeated
    id)."""
    if not path.is_file():
        raise InputRefused(f"{path}: no such file")
    columns, typed = _file_columns(fields, platform)
    source = (
        f"read_json({sql_string(str(path))}, format = 'newline_delimited', columns = {columns}, "
        "ignore_errors = true)"
    )
    keep = "TRUE" if types is None else types_sql(types)
    counter = None
    if stats is not None:
        counter = threading.Thread(target=_line_counts, args=(path, stats), daemon=True)
        counter.start()
        keep = f"({keep}) OR NOT usable"
    else:
        keep = f"({keep}) AND usable"
    con.execute("SET preserve_insertion_order = true")  # the rowid order below is the file's
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE file_events AS
        SELECT * FROM (
            SELECT *, coalesce(event_id IS NOT NULL AND type IS NOT NULL AND customer_id IS NOT NULL
                AND ts IS NOT NULL, false) AS usable
            FROM (SELECT {typed} FROM {source})
        )
        WHERE {keep}
    """)
    if stats is not None and counter is not None:
        row = con.execute("SELECT count(*) FROM file_events WHERE NOT usable").fetchall()[0]
        counter.join()
        stats.unusable = int(row[0])
    # the table keeps the file's order (insertion order is preserved, also when DuckDB parses the file on
    # several threads), so its rowid numbers the kept lines in file order; a window numbering the lines
    # while parsing would make the parse single-threaded
    return (
        "(SELECT * EXCLUDE (usable), CAST(ts AS DATE) AS local_date, rowid AS _line FROM file_events "
        "WHERE usable)"
    )


def _log_source(settings: Settings, files: list[Path] | None, platform: bool) -> str:
    """The log's events (or those of some of its ``files``), with the platform fields from the stored
    line when asked for."""
    if files is None:
        scan = EventLog(settings).scan_sql()
    elif files:
        listing = ", ".join(sql_string(str(f)) for f in files)
        scan = f"read_parquet([{listing}], hive_partitioning = true, union_by_name = true)"
    else:
        cols = ", ".join(f"NULL::{kind} AS {name}" for name, kind in COLUMNS)
        scan = f"(SELECT {cols} WHERE false)"
    if not platform:
        return scan
    extracted = ", ".join(
        f"CASE WHEN type LIKE 'message.%' OR type LIKE 'lead.%' "
        f"THEN json_extract_string(payload, {sql_string('$.' + f)}) END AS {f}"
        for f in PLATFORM_FIELDS
    )
    return f"(SELECT *, {extracted} FROM {scan})"


def _line_counts(path: Path, stats: ReadStats, chunk_size: int = 1 << 24) -> None:
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


def _output(fields: list[str], platform: bool, renamed: bool) -> str:
    """The columns handed to Python. Dates travel as days since the epoch and amounts as integer fen:
    turning Arrow dates and decimals into Python objects row by row costs more than the whole decision
    function of a campaign; ints are cheap, and the few distinct values are turned into ``date`` and
    ``Decimal`` once (:func:`rows_from`)."""
    out = [
        "event_id",
        "type",
        "_ids.owner AS customer_id" if renamed else "customer_id",
        "epoch_us(ts) AS ts_us",
        "date_diff('day', DATE '1970-01-01', local_date) AS local_day",
    ]
    for f in fields:
        if f == "amount":
            out.append(f"{fen_sql('amount')} AS amount")
        elif f == "weekday":
            out.append("isodow(ts) AS weekday")
        else:
            out.append(f)
    if platform:
        out += [f for f in PLATFORM_FIELDS if f not in fields]
    return ", ".join(out)


def event_sql(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    *,
    fields: list[str],
    types: Collection[str] | None = None,
    where: str | None = None,
    holders: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    customers: Collection[str] | Mapping[str, str] | None = None,
    platform: bool = False,
    path: Path | None = None,
    files: list[Path] | None = None,
    stats: ReadStats | None = None,
    ordered: bool = True,
) -> str:
    """The query, on ``con``, of the events wanted (columns as :func:`rows_from` takes them), in time order
    (then by id) unless not ``ordered``. The relation of the events is ``src`` (a ``where`` may refer to
    it, e.g. in ``EXISTS (SELECT 1 FROM src t WHERE t.customer_id = src.customer_id …)``). With
    ``holders`` (a condition over card.issued fields), only the events of customers with such a card: a
    campaign whose every rule needs one skips everyone else. ``since`` is inclusive, ``until`` too."""
    # holders: a condition on the customer, the same for every line of a repeated id, so it is applied
    # before a file's lines are numbered for "the first line wins": a backtest numbers only the lines of
    # card holders, a third of a year's events (numbering them all cost a 100k-customer year ~0.5 s and
    # ~150 MB more)
    lines = _file_source(con, path, types, fields, platform, stats) if path is not None else None
    scan = lines if lines is not None else _log_source(settings, files, platform)
    keep = (
        f"customer_id IN (SELECT customer_id FROM {scan} WHERE type = 'card.issued' AND ({holders}))"
        if holders is not None
        else "TRUE"
    )
    if lines is not None:
        source = (
            f"(SELECT * EXCLUDE (_line) FROM {lines} WHERE {keep} "
            "QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY _line) = 1)"
        )
    else:
        source = f"(SELECT * FROM {scan} WHERE {keep})" if holders is not None else scan
    con.execute(f"CREATE OR REPLACE TEMP VIEW src AS SELECT * FROM {source}")
    conditions = []
    if types is not None:
        conditions.append(types_sql(types))
    if where is not None:
        conditions.append(f"({where})")
    if since is not None:
        conditions.append(f"epoch_us(ts) >= {_micros(since)}")
    if until is not None:
        conditions.append(f"epoch_us(ts) <= {_micros(until)}")
    renamed = isinstance(customers, Mapping)
    join = ""
    if customers is not None:
        ids = list(customers)
        owners = [customers[i] for i in ids] if isinstance(customers, Mapping) else ids
        con.register(
            "_reader_ids",
            pa.table({"customer_id": pa.array(ids, pa.string()), "owner": pa.array(owners, pa.string())}),
        )
        join = " JOIN _reader_ids AS _ids USING (customer_id)"
    order = " ORDER BY ts, event_id" if ordered else ""
    where_sql = " AND ".join(conditions) or "TRUE"
    return f"SELECT {_output(fields, platform, renamed)} FROM src{join} WHERE {where_sql}{order}"


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def rows_from(
    batches: Iterable[pa.RecordBatch],
    fields: list[str],
    make: RowMaker[R],
    *,
    stats: ReadStats | None = None,
    platform: bool = False,
    sparse: bool = False,
) -> Iterator[R]:
    """Rows from Arrow batches of :func:`event_sql`'s columns. ``fields`` holds every wanted field (None
    included), or with ``sparse`` only those set, looked up among the fields of the event's type
    (:data:`TYPE_FIELDS`: a journey keeps millions of events in memory)."""
    days: dict[int, date] = {}
    fens: dict[int, Decimal] = {}
    every = [*fields, *(f for f in PLATFORM_FIELDS if f not in fields)] if platform else fields
    for rb in batches:
        cols = rb.to_pydict()
        if stats is not None:
            stats.read += rb.num_rows
        if "amount" in cols:
            cols["amount"] = [
                None if v is None else fens.get(v) or fens.setdefault(v, from_fen(v)) for v in cols["amount"]
            ]
        ids, types, customers, stamps, local_days = (
            cols["event_id"],
            cols["type"],
            cols["customer_id"],
            cols["ts_us"],
            cols["local_day"],
        )
        if sparse:
            for i in range(rb.num_rows):
                etype = types[i]
                values: dict[str, Any] = {}
                for name in TYPE_FIELDS.get(etype, every):
                    v = cols[name][i]
                    if v is not None:
                        values[name] = v
                day = local_days[i]
                local = days.get(day)
                if local is None:
                    local = days[day] = _EPOCH_DAY + timedelta(days=day)
                yield make(ids[i], etype, customers[i], stamps[i], local, values)
            continue
        field_rows = zip(*(cols[f] for f in every), strict=True) if every else iter(lambda: (), None)
        for eid, etype, cid, ts, day, row in zip(
            ids, types, customers, stamps, local_days, field_rows, strict=False
        ):
            local = days.get(day)
            if local is None:
                local = days[day] = _EPOCH_DAY + timedelta(days=day)
            yield make(eid, etype, cid, ts, local, dict(zip(every, row)))  # noqa: B905 - same length


def read_rows(
    settings: Settings,
    make: RowMaker[R],
    *,
    fields: Collection[str] | None = None,
    types: Collection[str] | None = None,
    where: str | None = None,
    holders: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    customers: Collection[str] | Mapping[str, str] | None = None,
    platform: bool = False,
    sparse: bool = False,
    path: Path | None = None,
    files: list[Path] | None = None,
    stats: ReadStats | None = None,
    ordered: bool = True,
    batch: int = 100_000,
) -> Iterator[R]:
    """Events (see the module's docstring) from a JSONL file ``path``, from some of the event log's
    ``files``, or (both None) from the whole event log, as rows made by ``make`` (an engine's own tuple of
    :class:`EventRow`'s shape, or an adapter)."""
    wanted = wanted_fields(fields)
    con = duck(settings)
    try:
        sql = event_sql(
            con,
            settings,
            fields=wanted,
            types=types,
            where=where,
            holders=holders,
            since=since,
            until=until,
            customers=customers,
            platform=platform,
            path=path,
            files=files,
            stats=stats,
            ordered=ordered,
        )
        reader = con.sql(sql).to_arrow_reader(batch)
        yield from rows_from(reader, wanted, make, stats=stats, platform=platform, sparse=sparse)
    finally:
        con.close()


def read_events(settings: Settings, **options: Any) -> Iterator[EventRow]:
    """Events as :class:`EventRow` rows (:func:`read_rows` takes the same options)."""
    return read_rows(settings, EventRow, **options)
