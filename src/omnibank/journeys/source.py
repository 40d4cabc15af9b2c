"""Events for journeys, in time order: from an ``events.jsonl`` file (``journey simulate``) or from files of
the event log (the worker applies the log file by file).

Besides the log's typed columns, platform events carry their own fields (receipts: ``message_id``,
``channel``, ``journey``, ``step``; leads: ``lead_id``, ``staff_id``, ``product_id``, ``source``): in the
log they are in the stored line (``payload``), in a file they are read as columns."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from omnibank.config import Settings
from omnibank.errors import InputRefused
from omnibank.events.log import JSON_FIELD_TYPES, TYPED_FIELDS, EventLog, duck, sql_string
from omnibank.journeys.machine import JourneyEvent

PLATFORM_FIELDS = ("journey", "step", "message_id", "lead_id", "staff_id", "source")
_FILE_TYPES = {**JSON_FIELD_TYPES, **{f: "VARCHAR" for f in PLATFORM_FIELDS if f != "channel"}}
#: the columns each known type may fill (others: every column is looked at)
TYPE_FIELDS: dict[str, tuple[str, ...]] = {
    "card.issued": ("channel", "card_id", "product", "tier", "is_primary", "new_customer"),
    "card.transaction": ("channel", "amount", "card_id", "merchant", "mcc"),
    "points.earned": ("channel", "points"),
    "points.redeem": ("channel", "reward", "quantity"),
    "app.product_view": ("channel", "product_id", "duration_s"),
    "app.login": ("channel",),
}


def _typed_file() -> str:
    cols = ["event_id", "type", "customer_id", "TRY_CAST(ts AS TIMESTAMPTZ) AS ts", "channel"]
    for f in TYPED_FIELDS:
        if f == "amount":
            cols.append("TRY_CAST(amount AS DECIMAL(18,2)) AS amount")
        elif f == "is_primary":
            cols.append('"primary" AS is_primary')
        else:
            cols.append(f)
    cols += [f for f in PLATFORM_FIELDS]
    return ", ".join(cols)


def _typed_log() -> str:
    cols = ["event_id", "type", "customer_id", "ts", "channel", *TYPED_FIELDS]
    cols += [
        f"CASE WHEN type LIKE 'message.%' OR type LIKE 'lead.%' "
        f"THEN json_extract_string(payload, {sql_string('$.' + f)}) END AS {f}"
        for f in PLATFORM_FIELDS
    ]
    return ", ".join(cols)


def types_sql(types: set[str]) -> str:
    """A condition: the event is of one of ``types``."""
    return f"type IN ({', '.join(sql_string(t) for t in sorted(types)) or 'NULL'})"


def read_journey_events(
    settings: Settings,
    *,
    where: str,
    path: Path | None = None,
    files: list[Path] | None = None,
    batch: int = 50_000,
) -> Iterator[JourneyEvent]:
    """Events matching ``where`` (SQL over the log's columns, built by this package: never user text) in
    time order (then by id) from a JSONL file ``path``, from some of the log's ``files``, or (both None)
    from the whole log. A file's repeated ``event_id`` counts once; unusable lines are skipped
    (``omnibank load events`` reports them)."""
    con = duck(settings)
    try:
        if path is not None:
            if not path.is_file():
                raise InputRefused(f"{path}: no such file")
            columns = (
                "{" + ", ".join(f"{sql_string(k)}: {sql_string(v)}" for k, v in _FILE_TYPES.items()) + "}"
            )
            source = (
                f"read_json({sql_string(str(path))}, format = 'newline_delimited', columns = {columns}, "
                "ignore_errors = true)"
            )
            con.execute(
                f"CREATE TEMP TABLE src AS SELECT * FROM (SELECT {_typed_file()} FROM {source}) "
                "WHERE event_id IS NOT NULL AND type IS NOT NULL AND customer_id IS NOT NULL "
                "AND ts IS NOT NULL "
                "QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY ts) = 1"
            )
        else:
            log = EventLog(settings)
            if files is not None:
                if not files:
                    return
                listing = ", ".join(sql_string(str(f)) for f in files)
                scan = f"read_parquet([{listing}], hive_partitioning = true, union_by_name = true)"
            else:
                if not log.files():
                    return
                scan = log.scan_sql()
            con.execute(f"CREATE TEMP VIEW src AS SELECT {_typed_log()} FROM {scan}")
        names = ["event_id", "type", "customer_id", "channel", *TYPED_FIELDS, *PLATFORM_FIELDS]
        sql = f"SELECT epoch_us(ts) AS ts_us, {', '.join(names)} FROM src WHERE {where} ORDER BY ts, event_id"
        reader = con.sql(sql).to_arrow_reader(batch)
        tz = settings.tz
        every = names[3:]
        for rb in reader:
            cols = rb.to_pydict()
            ids, types, customers, stamps = cols["event_id"], cols["type"], cols["customer_id"], cols["ts_us"]
            for i in range(rb.num_rows):
                etype = types[i]
                fields: dict[str, Any] = {}
                for name in TYPE_FIELDS.get(etype, every):
                    v = cols[name][i]
                    if v is not None:
                        fields[name] = v
                ts = datetime.fromtimestamp(stamps[i] / 1_000_000, tz)
                fields["local_date"] = ts.date()
                yield JourneyEvent(ids[i], etype, customers[i], ts, fields)
    finally:
        con.close()
