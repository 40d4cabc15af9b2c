"""Events for a campaign run, in time order: from an ``events.jsonl`` file (a backtest on last year's
data, touching nothing) or from the data home's event log.

A file is read by DuckDB with the contract's fields; a line that is not usable (not JSON, no id, type,
customer or readable time) is skipped and counted; a repeated ``event_id`` counts once (its first line),
as in the event log."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from omnibank.campaigns.engine import Event
from omnibank.config import Settings
from omnibank.errors import InputRefused
from omnibank.events.log import TYPED_FIELDS, EventLog, configure, sql_string

FIELDS = ("channel", *TYPED_FIELDS, "weekday")  # what an Event's fields may hold
_JSON_COLUMNS = {
    "event_id": "VARCHAR",
    "type": "VARCHAR",
    "customer_id": "VARCHAR",
    "ts": "VARCHAR",
    "channel": "VARCHAR",
    "amount": "VARCHAR",
    "card_id": "VARCHAR",
    "product": "VARCHAR",
    "tier": "VARCHAR",
    "primary": "BOOLEAN",
    "new_customer": "BOOLEAN",
    "merchant": "VARCHAR",
    "mcc": "VARCHAR",
    "points": "BIGINT",
    "reward": "VARCHAR",
    "quantity": "BIGINT",
    "product_id": "VARCHAR",
    "duration_s": "DOUBLE",
}


@dataclass
class SourceStats:
    read: int = 0  # events of the campaign's types, in order
    lines: int = 0  # non-blank lines of the file
    unusable: int = 0  # lines that are not a JSON event with id, type, customer and a readable time


_TYPED = (
    "event_id, type, customer_id, TRY_CAST(ts AS TIMESTAMPTZ) AS ts, channel, "
    'TRY_CAST(amount AS DECIMAL(18,2)) AS amount, card_id, product, tier, "primary" AS is_primary, '
    "new_customer, merchant, mcc, points, reward, quantity, product_id, duration_s, "
    "isodow(TRY_CAST(ts AS TIMESTAMPTZ)) AS weekday"
)


def _select(source: str, types: set[str], from_file: bool, fields: list[str], holders: str | None) -> str:
    """Events of ``types`` in time order; with ``holders`` (a condition over card.issued fields), only
    the events of customers with such a card (and their card events): nobody else can qualify. A file's
    repeated ``event_id`` counts once, its first line (the log is deduplicated already)."""
    listed = ", ".join(sql_string(t) for t in sorted(types))
    cols = "".join(f", {f}" for f in fields)
    if from_file:
        keep = ""
        if holders is not None:
            keep = (
                f" AND customer_id IN (SELECT customer_id FROM (SELECT {_TYPED} FROM {source}) "
                f"WHERE type = 'card.issued' AND ({holders}))"
            )
        return f"""
        WITH lines AS (SELECT *, row_number() OVER () AS line FROM {source}),
        typed AS (
            SELECT {_TYPED}, line FROM lines
            WHERE event_id IS NOT NULL AND customer_id IS NOT NULL AND type IN ({listed}){keep}
        )
        SELECT event_id, type, customer_id, epoch_us(ts) AS ts_us, CAST(ts AS DATE) AS local_date{cols}
        FROM typed WHERE ts IS NOT NULL
        QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY line) = 1
        ORDER BY ts, event_id
        """
    keep = ""
    if holders is not None:
        cards = f"SELECT customer_id FROM {source} WHERE type = 'card.issued' AND ({holders})"
        keep = f" AND customer_id IN ({cards})"
    return f"""
        SELECT event_id, type, customer_id, epoch_us(ts) AS ts_us, local_date{cols}
        FROM (SELECT *, isodow(ts) AS weekday FROM {source})
        WHERE type IN ({listed}){keep} ORDER BY ts, event_id
    """


def _line_counts(settings: Settings, path: Path, stats: SourceStats) -> None:
    """Count the file's non-blank lines and its usable events (run beside the main read, on its own
    connection: it mostly overlaps with the engine's work on the other core)."""
    lines = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            lines += chunk.count(b"\n") - chunk.count(b"\n\n")
            last = chunk[-1:]
    if lines == 0 or last != b"\n":
        lines += path.stat().st_size > 0
    con = duckdb.connect()
    configure(con, settings)
    try:
        usable = con.execute(
            f"SELECT count(*) FROM read_json({sql_string(str(path))}, format = 'newline_delimited', "
            "columns = {'event_id': 'VARCHAR', 'type': 'VARCHAR', 'customer_id': 'VARCHAR', "
            "'ts': 'VARCHAR'}, ignore_errors = true) "
            "WHERE event_id IS NOT NULL AND customer_id IS NOT NULL AND type IS NOT NULL "
            "AND TRY_CAST(ts AS TIMESTAMPTZ) IS NOT NULL"
        ).fetchall()[0][0]
    finally:
        con.close()
    stats.lines = lines
    stats.unusable = max(lines - int(usable), 0)


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
    counter: threading.Thread | None = None
    wanted = [f for f in FIELDS if fields is None or f in fields]
    con = duckdb.connect()
    configure(con, settings)
    try:
        if path is not None:
            if not path.is_file():
                raise InputRefused(f"{path}: no such file")
            columns = (
                "{" + ", ".join(f"{sql_string(k)}: {sql_string(v)}" for k, v in _JSON_COLUMNS.items()) + "}"
            )
            source = (
                f"read_json({sql_string(str(path))}, format = 'newline_delimited', columns = {columns}, "
                "ignore_errors = true)"
            )
            counter = threading.Thread(target=_line_counts, args=(settings, path, stats), daemon=True)
            counter.start()
            sql = _select(source, types, True, wanted, holders)
        elif files is not None:
            listing = ", ".join(sql_string(str(f)) for f in files)
            scan = f"read_parquet([{listing}], hive_partitioning = true, union_by_name = true)"
            sql = _select(scan, types, False, wanted, holders)
        else:
            sql = _select(EventLog(settings).scan_sql(), types, False, wanted, holders)
        reader = con.sql(sql).to_arrow_reader(batch)
        for rb in reader:
            cols = rb.to_pydict()
            n = rb.num_rows
            stats.read += n
            field_rows = zip(*(cols[f] for f in wanted), strict=True) if wanted else iter(lambda: (), None)
            for eid, etype, cid, ts, day, values in zip(
                cols["event_id"],
                cols["type"],
                cols["customer_id"],
                cols["ts_us"],
                cols["local_date"],
                field_rows,
                strict=False,
            ):
                yield Event(eid, etype, cid, ts, day, dict(zip(wanted, values)))  # noqa: B905 - same length
        if counter is not None:
            counter.join()
    finally:
        con.close()
