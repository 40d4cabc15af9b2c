"""Copy the event log into the store's ``event_facts``, file by file, each file in one transaction.

The log (Parquet) stays the record; the mirror lets the same compiled expressions run inside PostgreSQL
(:class:`omnibank.segments.engine.StoreEngine`). Log files never change once published, so a file
mirrored once is never read again; running the mirror twice copies nothing the second time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow.parquet as pq
from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from omnibank.config import Settings
from omnibank.db.bulk import insert_rows
from omnibank.errors import Conflict
from omnibank.events.compact import unread
from omnibank.events.log import EventLog
from omnibank.events.models import EventFact, EventMirrorFile

_FACTS: Table = EventFact.__table__  # type: ignore[assignment]
COLUMNS = tuple(c.name for c in _FACTS.columns)


@dataclass
class MirrorReport:
    files: int = 0
    events: int = 0
    skipped_files: int = 0


def _rows(path: str) -> Iterator[tuple[Any, ...]]:
    pf = pq.ParquetFile(path)
    for batch in pf.iter_batches(batch_size=50_000, columns=list(COLUMNS)):
        yield from zip(*(batch.column(name).to_pylist() for name in COLUMNS), strict=True)


def mirror_events(
    session: Session, settings: Settings, *, on_file: Callable[[str, int], Any] | None = None
) -> MirrorReport:
    """Mirror every log file not mirrored yet. The caller commits (the unit of work)."""
    log = EventLog(settings)
    legacy = log.unprotected_files()
    if legacy:  # the mirror copies the log as it is: no card number as given into the store
        raise Conflict(
            f"{len(legacy)} log files were written before personal data was kept out of the log; "
            "run `omnibank events protect` first"
        )
    done = set(session.scalars(select(EventMirrorFile.path)))
    report = MirrorReport()
    todo = unread(log, done)  # a compacted file counts as mirrored when its originals are
    report.skipped_files = len(set(log.files()) - set(todo))
    for f in todo:
        rel = str(f.relative_to(log.dir))
        n = insert_rows(session, _FACTS, COLUMNS, _rows(str(f)))
        session.add(EventMirrorFile(path=rel, rows=n, mirrored_at=datetime.now(UTC)))
        session.flush()
        report.files += 1
        report.events += n
        if on_file:
            on_file(rel, n)
    return report
