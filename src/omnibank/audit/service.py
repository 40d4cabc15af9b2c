"""The audit trail: append (each entry with its MAC), chain (hash-chained in commit order) and seal, list,
checkpoint and verify."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, bindparam, func, insert, select, text, update
from sqlalchemy.orm import Session

from omnibank.audit.keyed import CHECKPOINT, AuditKey, audit_key, canonical_at, checkpoint_line
from omnibank.audit.models import AuditEntry, AuditSeal
from omnibank.config import Settings, get_settings
from omnibank.db import CommitHook, add_commit_hook
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
    mac: str | None = None,
    legacy: bool = False,
) -> str:
    """SHA-256 over a canonical serialisation (a compact JSON array, fields in a fixed order).

    ``v2`` (entries chained since release 0014) covers the entry's MAC too; ``legacy`` gives ``v1``, the
    hash of entries chained before (no MAC). PostgreSQL's ``omnibank_chain_audit`` (migration 0014) computes
    ``v2`` in the database, migration 0006 carries a copy of ``v1``: keep them in step."""
    payload: list[Any] = [
        "v1" if legacy else "v2",
        id,
        canonical_at(at),
        actor,
        action,
        subject_type,
        subject_id,
        detail,
        source,
        reason,
    ]
    if not legacy:
        payload.append(mac)
    payload.append(prev_hash)
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def _hash_of(entry: Any, *, prev_hash: str | None = None, legacy: bool = False) -> str:
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
        mac=None if legacy else entry.mac,
        legacy=legacy,
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
_SEALS = cast(Table, AuditSeal.__table__)

#: ``session.info`` key: the settings of the unit of work (whose key ring gives the audit key)
SETTINGS = "settings"


def key_for(session: Session) -> AuditKey:
    """The audit key for a session's store: the key ring of its unit of work's settings (else the
    environment's)."""
    settings = session.info.get(SETTINGS)
    return audit_key(settings if isinstance(settings, Settings) else get_settings())


def detail_text(detail: dict[str, Any] | None) -> str:
    """An entry's ``detail`` as stored (JSON, keys sorted)."""
    return json.dumps(detail or {}, ensure_ascii=False, sort_keys=True)


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
    its long digit runs (phones, ID numbers) masked. The entry carries the audit key's MAC of its content.

    The entry is written unchained (no lock: appends from any number of transactions run in parallel);
    it joins the hash chain once its transaction has committed (see ``chain``). Returned as written (not
    read back: its id and links are given by the database and the chaining)."""
    moment = at or datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError("naive datetime refused: every datetime must carry a time zone")
    values: dict[str, Any] = {
        "at": moment.astimezone(UTC),
        "actor": actor,
        "action": action,
        "subject_type": subject_type,
        "subject_id": subject_id,
        "detail": detail_text(detail),
        "source": source,
        "reason": mask_numbers(reason.strip())[:_REASON_MAX],
    }
    values["mac"] = key_for(session).entry_mac(**values)
    session.execute(insert(_TABLE).values(values))  # one statement, nothing read back
    add_commit_hook(session, "audit", _CHAIN_AT_COMMIT)  # the unit of work chains the entries
    return AuditEntry(**values)


# ------------------------------------------------------------------------------------------- chaining

#: entries chained per transaction of ``chain``
CHAIN_BATCH = 2000


def _link(session: Session, *, wait: bool, limit: int) -> int | None:
    """Link up to ``limit`` committed unchained entries to the head, in id order: how many (None: ``wait``
    is off and another chainer holds the lock)."""
    if session.get_bind().dialect.name == "postgresql":
        if not wait and not _lock_chain(session, wait=False):
            return None
        return int(session.scalar(text("SELECT omnibank_chain_audit(:limit, true)"), {"limit": limit}) or 0)
    if not _lock_chain(session, wait=wait):
        return None
    table = _TABLE
    seq, prev_hash = _head(session) or (0, GENESIS)
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


@dataclass(frozen=True)
class Sealed:
    seq: int
    head: str
    at: datetime
    prev: str
    mac: str


def _head(session: Session) -> tuple[int, str] | None:
    table = _TABLE
    row = session.execute(
        select(table.c.seq, table.c.hash)
        .where(table.c.seq.is_not(None))
        .order_by(table.c.seq.desc())
        .limit(1)
    ).first()
    return (int(row[0]), str(row[1])) if row else None


def _last_seal(session: Session) -> Any:
    return session.execute(select(_SEALS).order_by(_SEALS.c.seq.desc()).limit(1)).first()


def seal(session: Session, key: AuditKey, *, chained: int = 0, known: str | None = None) -> Sealed | None:
    """Seal the chain's head (its ``seq`` and hash) with the audit key, after the last seal, in the caller's
    transaction (which holds the chaining lock and has just chained ``chained`` entries); None when the head
    is sealed already or must not be.

    Refused (logged as an error; ``audit verify`` then reports the unsealed entries): the trail ends below
    the last seal (entries were cut off); there is no seal yet though entries with a MAC were chained before
    this transaction (the seals were deleted: the platform does not vouch afresh for a trail it cannot
    check); ``known``, the last seal this process wrote, is gone."""
    head = _head(session)
    if head is None:
        return None
    last = _last_seal(session)
    if last is not None and int(last.seq) >= head[0]:
        if int(last.seq) > head[0]:
            log.error(
                "audit trail ends at %s below its last seal at %s: entries were cut off", head[0], last.seq
            )
        return None
    gone = known is not None and (last is None or last.mac != known)
    if gone and session.scalar(select(_SEALS.c.id).where(_SEALS.c.mac == known)) is None:
        log.error("the audit seal this process wrote last is gone: seals were deleted; not sealing")
        return None
    if last is None:
        before = head[0] - chained
        keyed_before = session.scalar(
            select(_TABLE.c.id).where(_TABLE.c.mac.is_not(None), _TABLE.c.seq <= before).limit(1)
        )
        if keyed_before is not None:
            log.error("audit trail has keyed entries but no seal: the seals were deleted; not sealing")
            return None
    at = datetime.now(UTC)
    prev = str(last.mac) if last is not None else GENESIS
    new = Sealed(seq=head[0], head=head[1], at=at, prev=prev,
                 mac=key.seal_mac(seq=head[0], head=head[1], at=at, prev=prev))  # fmt: skip
    session.execute(insert(_SEALS).values(seq=new.seq, head=new.head, at=new.at, prev=new.prev, mac=new.mac))
    return new


def chain(
    session: Session, *, wait: bool = True, limit: int = CHAIN_BATCH, key: AuditKey | None = None
) -> int:
    """Link committed, not yet chained entries to the end of the hash chain, in id order, and seal the
    new head; how many.

    Why chaining is a step of its own: an append used to take a bank-wide lock and hold it until its
    transaction committed, so every audited write in the bank ran one at a time (behind whatever else its
    transaction did, and behind every other request for the CPU while it held the lock). Now an append only
    inserts its row (with its MAC); this step, in a short transaction of its own, takes the chaining lock,
    reads the head and gives each committed unchained entry its place in the chain (``seq``),
    ``prev_hash`` and ``hash``, then writes a seal of the new head (``seal``). No request waits for it. On
    PostgreSQL it runs after the commit: in the API server's background ``Chainer`` (woken by each audited
    commit, and sweeping every second for entries other processes appended), elsewhere (the CLI) at once
    after the unit of work commits. On SQLite, whose one writer at a time makes a transaction's end its
    commit order, the unit of work chains inside the transaction just before committing. Only the platform
    chains: ``omnibank audit verify`` reads.

    The trade-off: between its commit and its chaining (tens of milliseconds under load; at most about a
    second while the server runs; until the next audited write if the step failed) an entry is protected by
    the database triggers and its MAC: someone who can switch the triggers off could delete it unnoticed in
    that window (not change or forge it). Once chained and sealed, editing, deleting or re-ordering it breaks
    the chain or its seal, and making a chained entry look unchained breaks the link of the entry after it.
    Chain order is commit order (an entry whose transaction commits later is chained later even with a lower
    id); ``verify`` walks ``seq``. The triggers allow an entry exactly one change, this one (NULL → values,
    its content untouched).

    On PostgreSQL the database links the entries (``omnibank_chain_audit``, migration 0014: the same payload
    and hash as ``entry_hash``), so the entries do not travel to Python and back; the key never reaches the
    database: the seal is computed here."""
    n = _link(session, wait=wait, limit=limit)
    if n is None:
        return 0
    seal(session, key or key_for(session), chained=n)
    return n


def chain_in_transaction(session: Session) -> int:
    """Chain every unchained entry in the caller's transaction (SQLite: the one writer), then seal."""
    done = 0
    while True:
        n = _link(session, wait=True, limit=CHAIN_BATCH) or 0
        done += n
        if n < CHAIN_BATCH:
            break
    seal(session, key_for(session), chained=done)
    return done


#: the seal each store's engine (a long-running process: the API server) wrote last, kept in memory, so
#: seals deleted behind its back are noticed
_sealed: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def forget_seals() -> None:
    """Forget the seals this process wrote (tests that empty the trail)."""
    _sealed.clear()


def chain_pending(
    conn: Connection, *, wait: bool, batch: int = CHAIN_BATCH, pause: float = 0.0, key: AuditKey | None = None
) -> int:
    """Chain on ``conn`` (outside any transaction), ``batch`` entries per transaction with ``pause``
    seconds between transactions, each transaction sealing its head, until nothing is left or (``wait``
    off) another chainer holds the lock; how many entries were chained."""
    key = key or audit_key(get_settings())
    done = 0
    while True:
        with Session(bind=conn) as session:
            n = _link(session, wait=wait, limit=batch)
            sealed = seal(session, key, chained=n, known=_sealed.get(conn.engine)) if n is not None else None
            session.commit()
        if sealed is not None:
            _sealed[conn.engine] = sealed.mac
        done += n or 0
        if n is None or n < batch:
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
    (``wake``), and every ``interval`` seconds in any case (entries another process appended). With a
    checkpoint place configured it also exports checkpoints (``Checkpoints``).

    Once woken it lingers ``linger`` seconds so a busy server's entries gather into one round. On
    PostgreSQL a round is one call of the database's chaining function, whose cost is its entries' (about
    50 µs each, mostly the UPDATE of the entry and its indexes), and a seal (three short statements): short
    rounds spread that work evenly, where a round of a quarter second's entries took one core for up to
    160 ms under load and the requests of that moment queued behind it. (Chaining in Python, a round also had
    a fixed cost, and an entry cost 26 µs of the server's CPU in rounds of 2,000 but about 120 in rounds of
    ten.) An entry is chained within about ``linger`` of its commit under load, within ``interval`` at
    most."""

    def __init__(
        self,
        engine: Engine,
        *,
        interval: float = 1.0,
        linger: float = 0.05,
        settings: Settings | None = None,
    ):
        self.engine = engine
        self.interval = interval
        self.linger = linger
        self.settings = settings or get_settings()
        self.key = audit_key(self.settings)
        self.checkpoints = Checkpoints.of(self.settings)
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
                        conn, wait=stopping, batch=ROUND_BATCH, pause=0 if stopping else ROUND_PAUSE,
                        key=self.key,
                    )  # fmt: skip
                    if self.checkpoints is not None:
                        self.checkpoints.maybe_export(conn, self.key, force=stopping)
            except Exception:  # the store may be away for a moment: the next round retries
                log.warning("audit chaining failed; retrying", exc_info=True)
            if stopping:
                return


_chainers: dict[str, Chainer] = {}
_chainers_lock = threading.Lock()


def start_chainer(engine: Engine, *, interval: float = 1.0, settings: Settings | None = None) -> Chainer:
    """Chain this store's entries in the background (the API server does while it runs)."""
    key = engine.url.render_as_string(hide_password=False)
    with _chainers_lock:
        chainer = _chainers.get(key)
        if chainer is None:
            chainer = _chainers[key] = Chainer(engine, interval=interval, settings=settings)
            chainer.start()
        return chainer


def stop_chainer(engine: Engine) -> None:
    """Stop the background chainer (it chains what is committed first)."""
    with _chainers_lock:
        chainer = _chainers.pop(engine.url.render_as_string(hide_password=False), None)
    if chainer is not None:
        chainer.stop()


def _chain_before_commit(session: Session) -> bool:
    """SQLite has one writer at a time, so a transaction's own end is commit order: its entries join the
    hash chain before it commits, at no cost to concurrency (then nothing is left for after the commit).
    On PostgreSQL entries are chained after commit (:func:`after_commit`)."""
    if session.get_bind().dialect.name != "sqlite":
        return False
    chain_in_transaction(session)
    return True


def after_commit(conn: Connection, settings: Settings | None = None) -> None:
    """Called by the unit of work once a transaction that appended entries has committed: wake this
    process's background chainer, or (no server running here: the CLI, tests) chain at once on ``conn``.
    A failure is only logged: the write itself has committed, and a later round chains the entries."""
    chainer = _chainers.get(conn.engine.url.render_as_string(hide_password=False))
    if chainer is not None:
        chainer.wake()
        return
    try:
        chain_pending(conn, wait=True, key=audit_key(settings or get_settings()))
    except Exception:
        log.warning("audit chaining failed; the next audited write or the server chains", exc_info=True)


_CHAIN_AT_COMMIT = CommitHook(before=_chain_before_commit, after=after_commit)


# ----------------------------------------------------------------------------------------- checkpoints


class Checkpoints:
    """Exports a checkpoint (the last seal: ``seq``, head hash, time and MAC, one JSON line) every
    ``OMNIBANK_AUDIT_CHECKPOINT_SECONDS`` to ``OMNIBANK_AUDIT_CHECKPOINT_PATH`` (appended) and/or POSTs it to
    ``OMNIBANK_AUDIT_CHECKPOINT_URL``: a place outside the data home, so a trail cut short in the store
    is still found out (``omnibank audit verify --checkpoint FILE``). One process of a data home at a time
    exports (a lock file in the home); a failure is logged and retried at the next turn."""

    def __init__(self, settings: Settings):
        self.path = settings.audit_checkpoint_path
        self.url = settings.audit_checkpoint_url
        self.every = settings.audit_checkpoint_seconds
        self.lock = settings.home_dir / ".audit-checkpoint.lock"
        self.timeout = settings.contact_webhook_timeout
        self._next = 0.0
        self._exported: int | None = None

    @classmethod
    def of(cls, settings: Settings) -> Checkpoints | None:
        if settings.audit_checkpoint_path is None and settings.audit_checkpoint_url is None:
            return None
        return cls(settings)

    def maybe_export(self, conn: Connection, key: AuditKey, *, force: bool = False) -> bool:
        """Export the last seal if it is time (or ``force``) and it is newer than the last exported."""
        now = time.monotonic()
        if now < self._next and not force:
            return False
        self._next = now + self.every
        import fcntl

        self.lock.parent.mkdir(parents=True, exist_ok=True)
        with self.lock.open("a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # another process of this home exports
            chain_pending(conn, wait=True, key=key)  # seals the head
            with Session(bind=conn) as session:
                last = _last_seal(session)
                session.rollback()
            if last is None or (self._exported is not None and int(last.seq) <= self._exported):
                return False
            line = checkpoint_line(last)
            if self.path is not None:
                append_checkpoint(self.path, line)
            if self.url is not None:
                _post(self.url, line, self.timeout)
            self._exported = int(last.seq)
            return True


def append_checkpoint(path: Path, line: str) -> None:
    """Append one checkpoint line to ``path`` (created 0600), flushed to disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _post(url: str, line: str, timeout: float) -> None:
    import urllib.request

    request = urllib.request.Request(
        url, data=line.encode("utf-8"), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - an http(s) URL
        response.read()


def checkpoint(conn: Connection, settings: Settings, out: Path | None = None) -> Sealed | None:
    """Chain what is committed, seal the head and return the last seal (None: an empty trail), appended as
    a checkpoint line to ``out`` when given (``omnibank audit checkpoint``)."""
    key = audit_key(settings)
    chain_pending(conn, wait=True, key=key)
    with Session(bind=conn) as session:
        last = _last_seal(session)
        session.rollback()
    if last is None:
        return None
    if out is not None:
        append_checkpoint(out, checkpoint_line(last))
    return Sealed(seq=int(last.seq), head=last.head, at=last.at, prev=last.prev, mac=last.mac)


# ------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Verdict:
    entries: int  # chained entries checked (all of them when intact)
    head: str  # hash of the last entry checked (GENESIS when the trail is empty)
    broken_at: int | None = None  # id of the first entry that does not verify
    problem: str = ""  # the first problem
    unchained: int = 0  # entries not chained yet (their transactions committed after the chaining)
    problems: tuple[str, ...] = ()  # everything that does not verify (``problem`` first)
    warnings: tuple[str, ...] = ()  # what weakens the protection without being a sign of tampering
    sealed: int = 0  # the chain position (``seq``) of the last seal (0: none)
    checkpoints: int = 0  # checkpoint lines checked

    @property
    def intact(self) -> bool:
        return not self.problems


def _walk(session: Session, table: Table, batch: int = 5000) -> Iterator[Any]:
    """Every chained entry (or seal) in chain order, as plain rows (keyset pages: a trail of millions stays
    in bounded memory)."""
    last = 0
    while True:
        rows = session.execute(
            select(table).where(table.c.seq > last).order_by(table.c.seq).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = int(rows[-1].seq)


@dataclass
class _Checkpoint:
    where: str  # FILE line N
    seq: int
    head: str
    at: str


def read_checkpoints(path: Path, key: AuditKey) -> tuple[list[_Checkpoint], list[str]]:
    """The checkpoint lines of ``path`` and the problems with it (a line that is not a checkpoint of this
    platform: no MAC that verifies)."""
    found: list[_Checkpoint] = []
    problems: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        return [], [f"checkpoint file {path} cannot be read: {exc.strerror or exc}"]
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            raw = json.loads(line)
            if raw.get("kind") != CHECKPOINT:
                raise ValueError
            at = datetime.strptime(raw["at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            item = Sealed(seq=int(raw["seq"]), head=str(raw["head"]), at=at, prev=str(raw["prev"]),
                          mac=str(raw["mac"]))  # fmt: skip
        except (ValueError, KeyError, TypeError, AttributeError):
            problems.append(f"{where} is not an audit checkpoint")
            continue
        if not key.seal_ok(item):
            problems.append(f"{where} does not verify with the audit key (altered, or another bank's)")
            continue
        found.append(_Checkpoint(where, item.seq, item.head, raw["at"]))
    return found, problems


def verify(
    session: Session, settings: Settings | None = None, *, checkpoints: tuple[Path, ...] = ()
) -> Verdict:
    """Check the trail, reading only (it never chains: entries inserted by anyone are not taken in).

    - Every entry carries the audit key's MAC of its content (entries chained before keyed entries, under
      the first seal, excepted), and no MAC twice.
    - The chain, in chain order (``seq``): each entry hashes to its ``hash`` and names the previous entry's
      hash as ``prev_hash``, so an edited, deleted or re-ordered entry breaks it.
    - Every seal verifies with the key, follows the one before, and names the hash the trail has at its
      position; no chained entry lies beyond the last seal (the platform seals in the transaction that
      chains); no seal lies beyond the trail's end (entries cut off).
    - Each checkpoint (``checkpoints``: files of ``omnibank audit checkpoint``) verifies and matches the
      trail: a trail cut below a checkpoint is found out even when its seals were cut with it.
    - The protections are in place: the append-only triggers (missing or changed ones are problems); on
      PostgreSQL, what the connected role could do (warnings).

    For one consistent view on PostgreSQL run it in a REPEATABLE READ transaction (``audit verify`` does)."""
    settings = settings or (session.info.get(SETTINGS) or get_settings())
    key = audit_key(settings)
    session.flush()
    problems: list[str] = []
    warnings: list[str] = []
    wanted: dict[int, list[_Checkpoint]] = {}
    for path in checkpoints:
        found, bad = read_checkpoints(path, key)
        problems += bad
        for cp in found:
            wanted.setdefault(cp.seq, []).append(cp)
    n_checkpoints = sum(len(v) for v in wanted.values())

    seals = _walk(session, _SEALS)
    next_seal = next(seals, None)
    first_seal = int(next_seal.seq) if next_seal is not None else None
    last_seal_seq = 0
    seal_prev = GENESIS
    expected_prev = GENESIS
    previous_id: int | None = None
    broken_at: int | None = None
    chain_broken = False
    n = 0
    keyed = legacy = bad_macs = 0
    entries_before = 0  # the count shown with the first problem: entries before it that verify

    first_problem = ""

    def flag(entry_id: int | None, message: str) -> None:
        nonlocal broken_at, entries_before, first_problem
        if broken_at is None and entry_id is not None:
            broken_at, entries_before, first_problem = entry_id, n, message
        problems.append(message)

    for entry in _walk(session, _TABLE):
        if entry.prev_hash != expected_prev:
            before = f"entry {previous_id}" if previous_id is not None else "the start of the trail"
            flag(entry.id, f"entry {entry.id} does not follow {before}: an entry between them was deleted, "
                           "or entries were re-ordered")  # fmt: skip
            chain_broken = True
            break
        is_legacy = False
        if entry.mac is None and _hash_of(entry, legacy=True) == entry.hash:
            is_legacy = True
        elif _hash_of(entry) != entry.hash:
            flag(
                entry.id, f"entry {entry.id} does not match its hash: it was edited (or its hash was changed)"
            )
            chain_broken = True
            break
        if is_legacy:
            legacy += 1
            if keyed or (first_seal is not None and int(entry.seq) > first_seal):
                flag(entry.id, f"entry {entry.id} carries no MAC yet was chained after keyed entries: it was "
                               "not written by the platform")  # fmt: skip
        elif entry.mac is None or not key.entry_ok(entry):
            bad_macs += 1
            if bad_macs <= 10:
                flag(entry.id, f"entry {entry.id} {_NO_MAC}")
        else:
            keyed += 1
        for cp in wanted.pop(int(entry.seq), []):
            if cp.head != entry.hash:
                flag(entry.id, f"the trail differs from the checkpoint of {cp.at} ({cp.where}) at entry "
                               f"{entry.id}: {_REWRITTEN}")  # fmt: skip
        while next_seal is not None and int(next_seal.seq) <= int(entry.seq):
            problem = _seal_problem(next_seal, key, seal_prev, entry)
            if problem:
                flag(entry.id, problem)
                chain_broken = True
            seal_prev = str(next_seal.mac)
            last_seal_seq = int(next_seal.seq)
            next_seal = next(seals, None)
        if chain_broken:
            break
        expected_prev = entry.hash
        previous_id = entry.id
        n += 1
    if not chain_broken:
        if next_seal is not None:
            problems.append(
                f"the seal of {canonical_at(next_seal.at)} covers {next_seal.seq} entries, the trail has "
                f"{n}: {_CUT}"
            )
        for cps in sorted(wanted.items()):
            for cp in cps[1]:
                problems.append(
                    f"the checkpoint of {cp.at} ({cp.where}) counted {cp.seq} entries, the trail has {n}: "
                    f"{_CUT}"
                )
        if n > last_seal_seq:
            unsealed = n - last_seal_seq
            if keyed or bad_macs or last_seal_seq:
                problems.append(
                    f"{unsealed} chained entr{'y' if unsealed == 1 else 'ies'} after the last seal: the "
                    "platform seals what it chains, in the same transaction (seals were deleted, or entries "
                    "chained by someone else)"
                )
            else:
                warnings.append(
                    f"{legacy} entries made before keyed entries are not sealed yet: the platform's next "
                    "chaining seals them (an audited write, a running server, `omnibank audit checkpoint`)"
                )
    for entry in session.execute(select(_TABLE).where(_TABLE.c.seq.is_(None)).order_by(_TABLE.c.id)):
        if not key.entry_ok(entry):
            flag(entry.id, f"entry {entry.id} (not chained yet) {_NO_MAC}")
    copies = session.scalars(
        select(_TABLE.c.mac).where(_TABLE.c.mac.is_not(None)).group_by(_TABLE.c.mac)
        .having(func.count() > 1).limit(5)
    ).all()  # fmt: skip
    if copies:
        problems.append(f"{len(copies)} MAC(s) appear on more than one entry: entries were copied")
    guards, weak = protections(session)
    problems += guards
    warnings += weak
    unchained = pending(session)
    if unchained:
        warnings.append(
            f"{unchained} entr{'y' if unchained == 1 else 'ies'} committed but not chained yet (the platform "
            "chains them: a running server within a second, else the next audited write or `omnibank audit "
            "checkpoint`)"
        )
    return Verdict(
        entries=entries_before if broken_at is not None else n,
        head=expected_prev,
        broken_at=broken_at,
        problem=first_problem or (problems[0] if problems else ""),
        unchained=unchained,
        problems=tuple(problems),
        warnings=tuple(warnings),
        sealed=last_seal_seq,
        checkpoints=n_checkpoints,
    )


_REWRITTEN = "entries up to it were changed, deleted or re-ordered"
_CUT = "the newest entries were cut off"
_NO_MAC = (
    "carries no valid MAC: it was not written by the platform (inserted or edited with SQL by someone "
    "without the key)"
)
_OWN_NOTHING = "run the platform as a role that owns no table (docs/security.md)"


def _seal_problem(seal_row: Any, key: AuditKey, prev: str, entry: Any) -> str:
    when = canonical_at(seal_row.at)
    if not key.seal_ok(seal_row):
        return f"the seal of {when} at entry {entry.id} does not verify with the audit key: forged or altered"
    if seal_row.prev != prev:
        return f"the seal of {when} does not follow the seal before it: seals were deleted"
    if int(seal_row.seq) != int(entry.seq) or seal_row.head != entry.hash:
        return (
            f"the trail differs from its seal of {when} at entry {entry.id}: entries up to it were changed, "
            "deleted or re-ordered, and the chain recomputed"
        )
    return ""


def verify_all(conn: Connection, settings: Settings | None = None) -> Verdict:
    """The platform's view (tests, tools that write): chain and seal every committed entry (waiting for a
    chainer at work), then verify the whole trail in one snapshot."""
    settings = settings or get_settings()
    chain_pending(conn, wait=True, key=audit_key(settings))
    return verify_snapshot(conn, settings)


def verify_snapshot(conn: Connection, settings: Settings, *, checkpoints: tuple[Path, ...] = ()) -> Verdict:
    """``verify`` in one read-only snapshot of the store (REPEATABLE READ on PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    with Session(bind=conn) as session:
        if conn.dialect.name == "postgresql":
            session.execute(text("SET TRANSACTION READ ONLY"))
        try:
            return verify(session, settings, checkpoints=checkpoints)
        finally:
            session.rollback()


# ------------------------------------------------------------------------------------------ protections

#: the append-only triggers as release 0014 creates them (``protections`` compares them; keep in step
#: with migration 0014)
CONTENT = ("id", "at", "actor", "action", "subject_type", "subject_id", "detail", "source", "reason", "mac")
_UNCHAINED = "OLD.seq IS NULL AND OLD.prev_hash IS NULL AND OLD.hash IS NULL"
_CHAINED = "NEW.seq IS NOT NULL AND NEW.prev_hash IS NOT NULL AND NEW.hash IS NOT NULL"
SQLITE_TRIGGERS = {
    "audit_entries_no_update": "CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries "
    f"WHEN NOT ({_UNCHAINED} AND {_CHAINED} AND {' AND '.join(f'NEW.{c} IS OLD.{c}' for c in CONTENT)}) "
    "BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END",
    "audit_entries_no_delete": "CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END",
    "audit_seals_no_update": "CREATE TRIGGER audit_seals_no_update BEFORE UPDATE ON audit_seals "
    "BEGIN SELECT RAISE(ABORT, 'audit_seals is append-only'); END",
    "audit_seals_no_delete": "CREATE TRIGGER audit_seals_no_delete BEFORE DELETE ON audit_seals "
    "BEGIN SELECT RAISE(ABORT, 'audit_seals is append-only'); END",
}
PG_FUNCTIONS = {
    "audit_entries_append_only": "BEGIN "
    f"IF TG_OP = 'UPDATE' AND {_UNCHAINED} AND {_CHAINED} "
    f"AND ({', '.join('NEW.' + c for c in CONTENT)}) IS NOT DISTINCT FROM "
    f"({', '.join('OLD.' + c for c in CONTENT)}) THEN RETURN NEW; END IF; "
    "RAISE EXCEPTION 'audit_entries is append-only'; END",
    "audit_seals_append_only": "BEGIN RAISE EXCEPTION 'audit_seals is append-only'; END",
}
#: table → its trigger (PostgreSQL: BEFORE UPDATE OR DELETE, FOR EACH ROW, calling the function of its name)
PG_TRIGGERS = {"audit_entries": "audit_entries_append_only", "audit_seals": "audit_seals_append_only"}
_PG_ROW_BEFORE_UPDATE_DELETE = 1 | 2 | 8 | 16  # pg_trigger.tgtype: ROW, BEFORE, DELETE, UPDATE


def protections(session: Session) -> tuple[list[str], list[str]]:
    """What guards the trail in the database itself: (problems, warnings). A missing or changed append-only
    trigger is a problem (someone switched it off); on PostgreSQL what the connected role could do to the
    tables is a warning (it is how the platform was set up, see docs/security.md)."""
    problems: list[str] = []
    warnings: list[str] = []
    if session.get_bind().dialect.name != "postgresql":
        triggers = text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
        found: dict[str, str] = {str(r[0]): str(r[1]) for r in session.execute(triggers)}
        for name, ddl in SQLITE_TRIGGERS.items():
            if name not in found:
                problems.append(f"protection missing: the trigger {name} is gone (dropped): the trail can be "
                                "changed with plain SQL")  # fmt: skip
            elif found[name] != ddl:
                problems.append(f"protection changed: the trigger {name} is not the platform's")
        return problems, warnings
    rows = session.execute(text(
        "SELECT c.relname, t.tgname, t.tgenabled, t.tgtype, p.proname, p.prosrc FROM pg_trigger t "
        "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid "
        "WHERE c.oid IN ('audit_entries'::regclass, 'audit_seals'::regclass) AND NOT t.tgisinternal"
    )).all()  # fmt: skip
    for table, name in PG_TRIGGERS.items():
        row = next((r for r in rows if r.relname == table and r.tgname == name), None)
        if row is None:
            problems.append(f"protection missing: the trigger {name} on {table} is gone (dropped): the trail "
                            "can be changed with plain SQL")  # fmt: skip
        elif row.tgenabled not in ("O", "A"):
            problems.append(f"protection missing: the trigger {name} on {table} is disabled")
        elif (int(row.tgtype) & _PG_ROW_BEFORE_UPDATE_DELETE) != _PG_ROW_BEFORE_UPDATE_DELETE or (
            row.proname != name or str(row.prosrc).strip() != PG_FUNCTIONS[name]
        ):
            problems.append(f"protection changed: the trigger {name} on {table} is not the platform's")
    role = session.execute(text(
        "SELECT current_user AS name, r.rolsuper, pg_get_userbyid(c.relowner) = current_user AS owner, "
        "has_table_privilege('audit_entries', 'DELETE') AS can_delete, "
        "has_table_privilege('audit_entries', 'TRUNCATE') AS can_truncate "
        "FROM pg_roles r, pg_class c WHERE r.rolname = current_user AND c.oid = 'audit_entries'::regclass"
    )).one()  # fmt: skip
    if role.rolsuper:
        warnings.append(f"the database role {role.name} is a superuser: it can switch the append-only "
                        f"triggers off; {_OWN_NOTHING}")  # fmt: skip
    elif role.owner:
        warnings.append(f"the database role {role.name} owns audit_entries: it can drop or disable the "
                        f"append-only trigger; {_OWN_NOTHING}")  # fmt: skip
    if role.can_delete or role.can_truncate:
        what = " and ".join(
            w for w, can in (("DELETE", role.can_delete), ("TRUNCATE", role.can_truncate)) if can
        )
        warnings.append(f"the database role {role.name} may {what} audit_entries (the triggers stop DELETE; "
                        "nothing but the privilege stops TRUNCATE)")  # fmt: skip
    return problems, warnings


_chainer_keys: dict[str, str] = {}  # a store's configured URL → its engine's (the chainers' key)


def wake_chainer(settings: Settings) -> None:
    """Entries were appended outside a unit of work (the API's fast path): wake this process's background
    chainer, if it runs (else the next audited write chains them)."""
    key = _chainer_keys.get(settings.db_url)
    if key is None:
        from omnibank.db import get_engine

        key = _chainer_keys[settings.db_url] = get_engine(settings).url.render_as_string(hide_password=False)
    chainer = _chainers.get(key)
    if chainer is not None:
        chainer.wake()
