"""The audit trail: append (hash-chained, serialised), list and verify."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from omnibank.audit.models import AuditEntry
from omnibank.config import get_settings
from omnibank.kit.masking import mask_numbers

#: ``prev_hash`` of the first entry of the chain
GENESIS = "0" * 64
#: the key of the PostgreSQL advisory lock that serialises appends (held until the transaction ends)
APPEND_LOCK = 7312006
_REASON_MAX = 500


def cli_actor() -> str:
    settings = get_settings()
    if settings.actor:
        return settings.actor
    try:
        user = os.getlogin()
    except OSError:
        import pwd

        user = pwd.getpwuid(os.getuid()).pw_name
    return f"cli:{user}"


def api_source(ip: str | None) -> str:
    """The ``source`` of an entry written for an API request from ``ip``."""
    return f"api:{ip}" if ip else "api"


def canonical_at(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(
    *,
    id: int,
    at: datetime,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str | None,
    detail: str,
    source: str,
    reason: str,
    prev_hash: str,
) -> str:
    """SHA-256 over a canonical serialisation (a compact JSON array, fields in a fixed order).

    Migration 0006 carries its own copy of this function for the entries it chains: keep them in step."""
    payload = [
        "v1",
        id,
        canonical_at(at),
        actor,
        action,
        subject_type,
        subject_id,
        detail,
        source,
        reason,
        prev_hash,
    ]
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def _hash_of(entry: Any) -> str:
    """The hash an entry (an ``AuditEntry`` or a row of its columns) must carry."""
    return entry_hash(
        id=entry.id,
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        subject_type=entry.subject_type,
        subject_id=entry.subject_id,
        detail=entry.detail,
        source=entry.source,
        reason=entry.reason,
        prev_hash=entry.prev_hash,
    )


def _lock_chain(session: Session) -> None:
    """Serialise appends until this transaction ends. PostgreSQL: a transaction-scoped advisory lock, so a
    second appender reads the head only after the first committed or rolled back. SQLite has one writer
    at a time, and a transaction that read a stale snapshot cannot write (WAL refuses the upgrade); the
    unique ``prev_hash`` refuses a fork on either."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK})
    elif dialect == "sqlite":
        # a write that changes nothing takes the write lock (waiting for it) before the head is read, so a
        # transaction that starts by auditing never reads a head that another writer moves meanwhile
        session.execute(text("UPDATE audit_entries SET id = id WHERE 0"))


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str | None,
    detail: dict[str, Any] | None = None,
    source: str = "cli",
    reason: str = "",
    at: datetime | None = None,
) -> AuditEntry:
    """Append an audit entry to the chain; ``detail`` must never carry personal data in plaintext, and
    ``reason`` has its long digit runs (phones, ID numbers) masked."""
    moment = at or datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError("naive datetime refused: every datetime must carry a time zone")
    session.flush()
    _lock_chain(session)
    head = session.execute(
        select(AuditEntry.id, AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)
    ).first()
    prev_id, prev_hash = (int(head[0]), str(head[1])) if head else (0, GENESIS)
    entry = AuditEntry(
        id=prev_id + 1,
        at=moment.astimezone(UTC),
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        detail=json.dumps(detail or {}, ensure_ascii=False, sort_keys=True),
        source=source,
        reason=mask_numbers(reason.strip())[:_REASON_MAX],
        prev_hash=prev_hash,
    )
    entry.hash = _hash_of(entry)
    session.add(entry)
    session.flush()
    return entry


# ------------------------------------------------------------------------------------------- reading


def list_entries(
    session: Session,
    *,
    actor: str | None = None,
    subject: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
) -> list[AuditEntry]:
    """The latest entries (newest first) by actor, subject id and/or time."""
    stmt = select(AuditEntry)
    if actor:
        stmt = stmt.where(AuditEntry.actor == actor)
    if subject:
        stmt = stmt.where(AuditEntry.subject_id == subject)
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= since)
    return list(session.scalars(stmt.order_by(AuditEntry.id.desc()).limit(limit)))


@dataclass(frozen=True)
class Verdict:
    entries: int  # entries checked (all of them when intact)
    head: str  # hash of the last entry checked (GENESIS when the trail is empty)
    broken_at: int | None = None  # id of the first entry that does not verify
    problem: str = ""

    @property
    def intact(self) -> bool:
        return self.broken_at is None


def _walk(session: Session, batch: int = 5000) -> Iterator[Any]:
    """Every entry in id order, as plain rows (keyset pages: a trail of millions stays in bounded memory)."""
    table = AuditEntry.__table__
    last = 0
    while True:
        rows = session.execute(select(table).where(table.c.id > last).order_by(table.c.id).limit(batch)).all()
        if not rows:
            return
        yield from rows
        last = int(rows[-1].id)


def verify(session: Session) -> Verdict:
    """Walk the chain in id order: each entry must hash to its ``hash`` and name the previous entry's hash
    as ``prev_hash``. Deleting the newest entries leaves a valid shorter chain: compare ``head`` with a
    copy kept elsewhere to notice that."""
    session.flush()
    expected_prev = GENESIS
    previous_id: int | None = None
    n = 0
    for entry in _walk(session):
        if entry.prev_hash != expected_prev:
            before = f"entry {previous_id}" if previous_id is not None else "the start of the trail"
            return Verdict(
                n,
                expected_prev,
                entry.id,
                f"entry {entry.id} does not follow {before}: an entry between them was deleted, "
                "or entries were re-ordered",
            )
        if _hash_of(entry) != entry.hash:
            return Verdict(
                n,
                expected_prev,
                entry.id,
                f"entry {entry.id} does not match its hash: it was edited (or its hash was changed)",
            )
        expected_prev = entry.hash
        previous_id = entry.id
        n += 1
    return Verdict(n, expected_prev)
