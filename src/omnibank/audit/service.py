"""The audit trail: append, chain (hash-chained in commit order), list and verify."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, bindparam, func, insert, select, text, update
from sqlalchemy.orm import Session

from omnibank.audit.models import AuditEntry
from omnibank.config import Settings, get_settings
from omnibank.kit.masking import mask_numbers

#: ``prev_hash`` of the first entry of the chain
GENESIS = "0" * 64
#: the key of the PostgreSQL advisory lock that serialises chaining (held until the transaction ends)
APPEND_LOCK = 7312006
_REASON_MAX = 500
log = logging.getLogger("omnibank.audit")


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


def _hash_of(entry: Any, *, prev_hash: str | None = None) -> str:
    """The hash an entry (an ``AuditEntry`` or a row of its columns) must carry (after ``prev_hash``:
    default its own)."""
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
        prev_hash=entry.prev_hash if prev_hash is None else prev_hash,
    )


def _lock_chain(session: Session, *, wait: bool) -> bool:
    """Take the chaining lock until this transaction ends; False when ``wait`` is off and another
    transaction holds it. PostgreSQL: a transaction-scoped advisory lock, so a second chainer reads the
    head only after the first committed. SQLite has one writer at a time: a write that changes nothing
    takes the write lock (waiting for it) before the head is read, so the head cannot move meanwhile."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        if wait:
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK})
            return True
        got = session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": APPEND_LOCK})
        return bool(got)
    session.execute(text("UPDATE audit_entries SET id = id WHERE 0"))
    return True


_TABLE = cast(Table, AuditEntry.__table__)

#: ``session.info`` flag: this transaction appended entries (``omnibank.db.unit_of_work`` chains them
#: once it has committed)
APPENDED = "audit_appended"


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
    """Append an audit entry; ``detail`` must never carry personal data in plaintext, and ``reason`` has
    its long digit runs (phones, ID numbers) masked.

    The entry is written unchained (no lock: appends from any number of transactions run in parallel);
    it joins the hash chain once its transaction has committed (see ``chain``). Returned as written (not
    read back: its id and links are given by the database and the chaining)."""
    moment = at or datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError("naive datetime refused: every datetime must carry a time zone")
    values = {
        "at": moment.astimezone(UTC),
        "actor": actor,
        "action": action,
        "subject_type": subject_type,
        "subject_id": subject_id,
        "detail": json.dumps(detail or {}, ensure_ascii=False, sort_keys=True),
        "source": source,
        "reason": mask_numbers(reason.strip())[:_REASON_MAX],
    }
    session.execute(insert(_TABLE).values(values))  # one statement, nothing read back
    session.info[APPENDED] = True
    return AuditEntry(**values)


# ------------------------------------------------------------------------------------------- chaining

#: entries chained per transaction of ``chain``
CHAIN_BATCH = 2000


def chain(session: Session, *, wait: bool = True, limit: int = CHAIN_BATCH) -> int:
    """Link committed, not yet chained entries to the end of the hash chain, in id order; how many.

    Why chaining is a step of its own: an append used to take a bank-wide lock and hold it until its
    transaction committed, so every audited write in the bank ran one at a time (behind whatever else its
    transaction did, and behind every other request for the CPU while it held the lock). Now an append only
    inserts its row; this step, in a short transaction of its own, takes the chaining lock, reads the head
    and gives each committed unchained entry its place in the chain (``seq``), ``prev_hash`` and ``hash``.
    No request waits for it. On PostgreSQL it runs after the commit: in the API server's background
    ``Chainer`` (woken by each audited commit, and sweeping every second for entries other processes
    appended), elsewhere (the CLI) at once after the unit of work commits. On SQLite, whose one writer at
    a time makes a transaction's end its commit order, the unit of work chains inside the transaction just
    before committing. ``omnibank audit verify`` chains everything committed before it walks.

    The trade-off: between its commit and its chaining (tens of milliseconds under load; at most about a
    second while the server runs; until the next audited write or ``audit verify`` if the step failed) an
    entry is protected by the database triggers only: someone who can switch them off could change or delete
    it unnoticed in that window. Once chained, editing, deleting or re-ordering it breaks the chain as before,
    and making a chained entry look unchained breaks the link of the entry after it. Chain order is commit
    order (an entry whose transaction commits later is chained later even with a lower id); ``verify``
    walks ``seq``. The triggers allow an entry exactly one change, this one (NULL → values, its content
    untouched).

    On PostgreSQL the database does it (``omnibank_chain_audit``, migration 0013: the same payload and hash
    as ``entry_hash``), so the entries do not travel to Python and back."""
    if session.get_bind().dialect.name == "postgresql":
        return int(
            session.scalar(text("SELECT omnibank_chain_audit(:limit, :wait)"), {"limit": limit, "wait": wait})
            or 0
        )
    if not _lock_chain(session, wait=wait):
        return 0
    table = _TABLE
    head = session.execute(
        select(table.c.seq, table.c.hash)
        .where(table.c.seq.is_not(None))
        .order_by(table.c.seq.desc())
        .limit(1)
    ).first()
    seq, prev_hash = (int(head[0]), str(head[1])) if head else (0, GENESIS)
    rows = session.execute(select(table).where(table.c.seq.is_(None)).order_by(table.c.id).limit(limit)).all()
    if not rows:
        return 0
    links = []
    for row in rows:
        seq += 1
        digest = _hash_of(row, prev_hash=prev_hash)
        links.append({"b_id": row.id, "b_seq": seq, "b_prev": prev_hash, "b_hash": digest})
        prev_hash = digest
    session.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"), table.c.seq.is_(None))
        .values(seq=bindparam("b_seq"), prev_hash=bindparam("b_prev"), hash=bindparam("b_hash")),
        links,
    )
    return len(links)


def chain_in_transaction(session: Session) -> int:
    """Chain every unchained entry in the caller's transaction (SQLite: the one writer)."""
    done = 0
    while (n := chain(session)) == CHAIN_BATCH:
        done += n
    return done + n


def chain_pending(conn: Connection, *, wait: bool, batch: int = CHAIN_BATCH, pause: float = 0.0) -> int:
    """Chain on ``conn`` (outside any transaction), ``batch`` entries per transaction with ``pause``
    seconds between transactions, until nothing is left or (``wait`` off) another chainer holds the lock;
    how many entries were chained."""
    done = 0
    while True:
        with Session(bind=conn) as session:
            n = chain(session, wait=wait, limit=batch)
            session.commit()
        done += n
        if n < batch:
            return done
        if pause:
            time.sleep(pause)


def pending(session: Session) -> int:
    """Committed entries not yet chained (the partial index ``ix_audit_entries_unchained`` finds them)."""
    return int(session.scalar(select(func.count()).where(AuditEntry.seq.is_(None))) or 0)


#: the background chainer's entries per transaction, and its pause between them: a backlog (entries a
#: server appended faster than it chained, flat out) is worked off in slices of about 15 ms of the database's
#: CPU, not in one burst that the requests of that moment would queue behind
ROUND_BATCH = 250
ROUND_PAUSE = 0.01


class Chainer:
    """A background thread that chains committed entries: woken after each audited commit of this process
    (``wake``), and every ``interval`` seconds in any case (entries another process appended).

    Once woken it lingers ``linger`` seconds so a busy server's entries gather into one round. On
    PostgreSQL a round is one call of the database's chaining function, whose cost is its entries' (about
    50 µs each, mostly the UPDATE of the entry and its indexes): short rounds spread that work evenly, where
    a round of a quarter second's entries took one core for up to 160 ms under load and the requests of
    that moment queued behind it. (Chaining in Python, a round also had a fixed cost, and an entry cost 26 µs
    of the server's CPU in rounds of 2,000 but about 120 in rounds of ten.) An entry is chained within about
    ``linger`` of its commit under load, within ``interval`` at most."""

    def __init__(self, engine: Engine, *, interval: float = 1.0, linger: float = 0.05):
        self.engine = engine
        self.interval = interval
        self.linger = linger
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-chainer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(30)

    def _run(self) -> None:
        while True:
            if self._wake.wait(self.interval) and not self._stop.is_set():
                time.sleep(self.linger)  # let a busy server's entries gather: one round chains them all
            self._wake.clear()
            stopping = self._stop.is_set()
            try:
                with self.engine.connect() as conn:
                    chain_pending(
                        conn, wait=stopping, batch=ROUND_BATCH, pause=0 if stopping else ROUND_PAUSE
                    )
            except Exception:  # the store may be away for a moment: the next round retries
                log.warning("audit chaining failed; retrying", exc_info=True)
            if stopping:
                return


_chainers: dict[str, Chainer] = {}
_chainers_lock = threading.Lock()


def start_chainer(engine: Engine, *, interval: float = 1.0) -> Chainer:
    """Chain this store's entries in the background (the API server does while it runs)."""
    key = engine.url.render_as_string(hide_password=False)
    with _chainers_lock:
        chainer = _chainers.get(key)
        if chainer is None:
            chainer = _chainers[key] = Chainer(engine, interval=interval)
            chainer.start()
        return chainer


def stop_chainer(engine: Engine) -> None:
    """Stop the background chainer (it chains what is committed first)."""
    with _chainers_lock:
        chainer = _chainers.pop(engine.url.render_as_string(hide_password=False), None)
    if chainer is not None:
        chainer.stop()


def after_commit(conn: Connection) -> None:
    """Called by the unit of work once a transaction that appended entries has committed: wake this
    process's background chainer, or (no server running here: the CLI, tests) chain at once on ``conn``.
    A failure is only logged: the write itself has committed, and a later round chains the entries."""
    chainer = _chainers.get(conn.engine.url.render_as_string(hide_password=False))
    if chainer is not None:
        chainer.wake()
        return
    try:
        chain_pending(conn, wait=True)
    except Exception:
        log.warning("audit chaining failed; the next audited write or `audit verify` chains", exc_info=True)


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
    entries: int  # chained entries checked (all of them when intact)
    head: str  # hash of the last entry checked (GENESIS when the trail is empty)
    broken_at: int | None = None  # id of the first entry that does not verify
    problem: str = ""
    unchained: int = 0  # entries not chained yet (their transactions committed after the chaining)

    @property
    def intact(self) -> bool:
        return self.broken_at is None


def _walk(session: Session, batch: int = 5000) -> Iterator[Any]:
    """Every chained entry in chain order, as plain rows (keyset pages: a trail of millions stays in
    bounded memory)."""
    table = _TABLE
    last = 0
    while True:
        rows = session.execute(
            select(table).where(table.c.seq > last).order_by(table.c.seq).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = int(rows[-1].seq)


def verify(session: Session) -> Verdict:
    """Walk the chain in chain order (``seq``): each entry must hash to its ``hash`` and name the previous
    entry's hash as ``prev_hash``, so an edited, deleted or re-ordered entry breaks it. Deleting the newest
    entries leaves a valid shorter chain: compare ``head`` with a copy kept elsewhere to notice that.
    Entries not chained yet are counted (``unchained``); ``verify_all`` chains them first."""
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
    return Verdict(n, expected_prev, unchained=pending(session))


def verify_all(conn: Connection) -> Verdict:
    """Chain every committed entry (waiting for a chainer at work), then verify the whole trail."""
    chain_pending(conn, wait=True)
    with Session(bind=conn) as session:
        return verify(session)


_chainer_keys: dict[str, str] = {}  # a store's configured URL → its engine's (the chainers' key)


def wake_chainer(settings: Settings) -> None:
    """Entries were appended outside a unit of work (the API's fast path): wake this process's background
    chainer, if it runs (else the next audited write or ``audit verify`` chains them)."""
    key = _chainer_keys.get(settings.db_url)
    if key is None:
        from omnibank.db import get_engine

        key = _chainer_keys[settings.db_url] = get_engine(settings).url.render_as_string(hide_password=False)
    chainer = _chainers.get(key)
    if chainer is not None:
        chainer.wake()
