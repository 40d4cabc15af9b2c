"""Reading the audit trail, once for the CLI, the API and the console: a page of entries (newest first, by
actor, action, subject and time) and the verification of the whole trail, timed."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from omnibank.audit import service
from omnibank.audit.models import AuditEntry
from omnibank.config import Settings


@dataclass(frozen=True)
class TrailPage:
    entries: list[AuditEntry]
    next_before: int | None  # pass as ``before`` for the next (older) page; None on the last one


def trail(
    session: Session,
    *,
    actor: str | None = None,
    action: str | None = None,
    subject: str | None = None,
    since: datetime | None = None,
    before: int | None = None,
    limit: int = 50,
) -> TrailPage:
    """The latest entries (newest first) by actor, action, subject id and/or time; ``before``: only entries
    older than that id (keyset pages)."""
    stmt = select(AuditEntry)
    if actor:
        stmt = stmt.where(AuditEntry.actor == actor)
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    if subject:
        stmt = stmt.where(AuditEntry.subject_id == subject)
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= since)
    if before is not None:
        stmt = stmt.where(AuditEntry.id < before)
    rows = list(session.scalars(stmt.order_by(AuditEntry.id.desc()).limit(limit)))
    return TrailPage(rows, rows[-1].id if rows and len(rows) == limit else None)


@dataclass(frozen=True)
class Verification:
    verdict: service.Verdict
    seconds: float  # how long it took


def verify(conn: Connection, settings: Settings, *, checkpoints: tuple[Path, ...] = ()) -> Verification:
    """Verify the whole trail in one read-only snapshot (:func:`omnibank.audit.service.verify_snapshot`),
    timed (it reads every entry: seconds on a trail of millions)."""
    started = time.perf_counter()
    verdict = service.verify_snapshot(conn, settings, checkpoints=checkpoints)
    return Verification(verdict, time.perf_counter() - started)
