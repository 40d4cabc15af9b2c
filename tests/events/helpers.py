"""Helpers for the event log tests: event files written for real, the log read back with DuckDB."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from omnibank.config import Settings
from omnibank.events.log import EventLog
from omnibank.kit.loading import LoadReport

Line = dict[str, Any] | str | bytes


def event(event_id: str | int = "e1", type_: str = "app.login", **fields: Any) -> dict[str, Any]:
    """A valid event; keyword arguments add or replace fields (``None`` removes one)."""
    base: dict[str, Any] = {
        "event_id": event_id,
        "type": type_,
        "customer_id": "C0000001",
        "ts": "2026-03-01T10:00:00+08:00",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def txn(event_id: str, amount: Any = "12.50", **fields: Any) -> dict[str, Any]:
    """A card transaction; ``card_id`` may be replaced or (``None``) removed like any field."""
    return event(event_id, "card.transaction", **{"card_id": "6222000012345678", "amount": amount, **fields})


def jsonl(path: Path, *lines: Line) -> Path:
    """Write an events file, one line each: dicts as JSON, str as they are (UTF-8), bytes verbatim."""
    encoded = []
    for line in lines:
        if isinstance(line, dict):
            encoded.append(json.dumps(line, ensure_ascii=False).encode())
        elif isinstance(line, str):
            encoded.append(line.encode())
        else:
            encoded.append(line)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(encoded) + b"\n")
    return path


def stored(settings: Settings) -> dict[str, dict[str, Any]]:
    """The log as DuckDB reads it, by event_id; ``ts`` as microseconds since the epoch (UTC)."""
    log = EventLog(settings)
    con = log.connect()
    try:
        cur = con.execute(f"SELECT * EXCLUDE (ts), epoch_us(ts) AS ts_us FROM {log.scan_sql()}")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        con.close()
    by_id = {r["event_id"]: r for r in rows}
    assert len(by_id) == len(rows), "an event_id is stored twice"
    return by_id


def rejects(report: LoadReport) -> list[tuple[int, str, str]]:
    if report.rejects_path is None:
        return []
    with open(report.rejects_path, encoding="utf-8-sig", newline="") as fh:
        return [(int(r["line"]), r["reason"], r["raw"]) for r in csv.DictReader(fh)]


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []
