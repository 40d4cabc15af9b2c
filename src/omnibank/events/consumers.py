"""Jobs that act on events as they arrive read the log files they have not read (``event_consumer_files``).

A published log file never changes, so a consumer's position is the set of files it has read: a load that
publishes three files while a consumer runs leaves them for its next pass, and a pass that fails commits
nothing, so the same files are read again. Acting twice on an event is prevented by the consumer's own keys
(a survey send's key, an alert's), so reading a file twice is harmless. Flushes, never commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from omnibank.config import Settings
from omnibank.events.compact import unread
from omnibank.events.log import EventLog
from omnibank.events.models import EventConsumerFile


def unread_files(session: Session, settings: Settings, consumer: str) -> list[Path]:
    """The log's files ``consumer`` has not read, in the log's order."""
    log = EventLog(settings)
    done = set(session.scalars(select(EventConsumerFile.path).where(EventConsumerFile.consumer == consumer)))
    return unread(log, done)  # compacted files mapped to their originals


def mark_read(
    session: Session, settings: Settings, consumer: str, files: list[Path], counts: Mapping[str, int], *,
    now: datetime,
) -> None:  # fmt: skip
    """Record ``files`` as read by ``consumer`` (``counts``: events acted on per file path as read)."""
    log = EventLog(settings)
    for f in files:
        session.add(
            EventConsumerFile(
                consumer=consumer, path=str(f.relative_to(log.dir)), events=counts.get(str(f), 0), read_at=now
            )
        )
    session.flush()


__all__ = ["mark_read", "unread_files"]
