"""Events for journeys, in time order: from an ``events.jsonl`` file (``journey simulate``) or from files of
the event log (the worker applies the log file by file), read by the one event reader
(:mod:`omnibank.events.reader`).

A thin adapter, because the step machine takes a :class:`~omnibank.journeys.machine.JourneyEvent`, not the
reader's row: an aware datetime (its steps wait and schedule in the bank's zone), the fields of platform
events (receipts, leads) beside the typed columns, only the fields that are set (a simulation keeps every
event an expression counts in memory), and the bank-local day as ``local_date`` among the fields (what the
in-memory expression evaluator reads)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

from omnibank.config import Settings
from omnibank.events.reader import FIELDS, read_rows, types_sql
from omnibank.journeys.machine import JourneyEvent

__all__ = ["read_journey_events", "types_sql"]

#: the reader's fields a journey event carries (not ``weekday``: journeys never had it among an event's
#: fields, and a receipt's fields are compared as they are)
_FIELDS = tuple(f for f in FIELDS if f != "weekday")


def read_journey_events(
    settings: Settings,
    *,
    where: str,
    path: Path | None = None,
    files: list[Path] | None = None,
    batch: int = 50_000,
) -> Iterator[JourneyEvent]:
    """Events matching ``where`` (SQL over the reader's ``src``, built by this package: never user text) in
    time order (then by id) from a JSONL file ``path``, from some of the log's ``files``, or (both None)
    from the whole log. A file's repeated ``event_id`` counts once (its first line); unusable lines are
    skipped (``omnibank load events`` reports them)."""
    tz = settings.tz

    def make(eid: str, etype: str, cid: str, ts_us: int, local: date, fields: dict[str, Any]) -> JourneyEvent:
        fields["local_date"] = local
        return JourneyEvent(eid, etype, cid, datetime.fromtimestamp(ts_us / 1_000_000, tz), fields)

    yield from read_rows(
        settings,
        make,
        fields=_FIELDS,
        where=where,
        platform=True,
        sparse=True,
        path=path,
        files=files,
        batch=batch,
    )
