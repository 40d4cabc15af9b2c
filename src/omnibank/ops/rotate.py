"""Key rotation: add a data key, re-encrypt every personal field under it, retire old keys.

Rotation never takes the platform down. The new key is written into the key ring file first (with the
old keys kept), so every process decrypts both old and new ciphertexts from then on (``get_cipher``
reloads the ring when the file changes). Then the encrypted columns are rewritten in batches, each batch
its own short transaction, with a compare-and-set on the old ciphertext so that a value a loader changed
meanwhile is never overwritten. An interrupted run leaves a mix of old and new ciphertexts, all
readable; ``keys rotate --resume`` (or any later run) re-encrypts what is left. ``keys retire KEYID``
drops an old key from the ring once no ciphertext in the store uses it.

The blind index key is **not** rotated. Blind indexes (and row fingerprints) are HMACs under it, and
they are stored not only in the operational store but also in the immutable Parquet event log
(``*_bidx`` columns written by the event loader): rotating it would mean rewriting published log files,
which the log's design forbids, or keeping every old index key for ever for lookups in old events, which
gains nothing. The index key only yields deterministic digests (it never decrypts anything); if it is
ever compromised, the remedy is a new data home built by re-loading the source files.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import (
    ColumnElement,
    LargeBinary,
    Table,
    and_,
    bindparam,
    func,
    or_,
    select,
    text,
    type_coerce,
)
from sqlalchemy.orm import Session

from omnibank.audit import service as audit
from omnibank.config import Settings
from omnibank.customers.models import Customer, CustomerIdentifier
from omnibank.db import unit_of_work
from omnibank.errors import ConfigError, Conflict, InputRefused, NotFound
from omnibank.kit.crypto import FieldCipher, KeyRing, load_or_create_key_ring
from omnibank.orgs.models import Staff
from omnibank.security import reset_ciphers
from omnibank.service.models import Ticket

DEFAULT_BATCH = 2000


@dataclass(frozen=True)
class EncryptedTable:
    """A table with encrypted fields: ``<field>_enc`` columns whose associated data is
    ``<table>.<field>:<primary key>``."""

    table: Table
    key: str
    fields: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.table.name

    def columns(self) -> list[str]:
        return [f"{f}_enc" for f in self.fields]


ENCRYPTED: tuple[EncryptedTable, ...] = (
    EncryptedTable(Customer.__table__, "customer_id", ("name", "phone", "id_number")),  # type: ignore[arg-type]
    EncryptedTable(Staff.__table__, "staff_id", ("name", "phone")),  # type: ignore[arg-type]
    # a card's number beside its token (the token is the row's value: customer_identifiers.value:<token>)
    EncryptedTable(CustomerIdentifier.__table__, "value", ("value",)),  # type: ignore[arg-type]
    # a complaint's own words, which may name people
    EncryptedTable(Ticket.__table__, "ticket_id", ("description",)),  # type: ignore[arg-type]
)


def key_header(kid: str) -> bytes:
    """The first bytes of every ciphertext made with key ``kid`` (see omnibank.kit.crypto)."""
    raw = kid.encode()
    return bytes([1, len(raw)]) + raw


def _under(column: ColumnElement[bytes], kid: str) -> ColumnElement[bool]:
    header = key_header(kid)
    prefix = type_coerce(func.substr(column, 1, len(header)), LargeBinary)
    return prefix == header


# -- the key ring file ------------------------------------------------------------------------------


def _refuse_env_key(settings: Settings, action: str) -> None:
    if settings.master_key is not None:
        raise InputRefused(
            f"keys {action} refused: the key ring comes from OMNIBANK_MASTER_KEY, which derives exactly one "
            "data key ('m0') and the index key from one secret. A second key cannot be added to an "
            "environment variable, and every process reading that variable would fail on data "
            "re-encrypted under a key it does not have. To rotate, keep the ring in a key file instead: "
            f"run `omnibank keys to-file` (writes the current ring to {settings.key_file}), "
            "then unset OMNIBANK_MASTER_KEY everywhere and run `omnibank keys rotate`."
        )


def load_ring(settings: Settings) -> KeyRing:
    secret = settings.master_key.get_secret_value() if settings.master_key else None
    return load_or_create_key_ring(settings.key_file, secret)


def write_ring(path: Path, ring: KeyRing) -> None:
    """Replace the key file atomically (mode 0600, synced before and after the rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(ring.to_json())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextmanager
def keys_lock(settings: Settings) -> Iterator[None]:
    """One key command (rotate, retire) at a time per data home; refuses instead of waiting."""
    folder = settings.key_file.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict(
                f"another `omnibank keys` command is running on {folder}; wait for it to finish"
            ) from None
        yield
    finally:
        os.close(fd)


def next_key_id(ring: KeyRing) -> str:
    numbers = [int(m.group(1)) for kid in ring.data_keys if (m := re.fullmatch(r"k(\d+)", kid))]
    return f"k{max(numbers, default=0) + 1}"


def ring_to_file(settings: Settings) -> Path:
    """Write the ring derived from OMNIBANK_MASTER_KEY into the key file, so it can be rotated."""
    if settings.master_key is None:
        raise InputRefused("keys to-file: OMNIBANK_MASTER_KEY is not set; the ring is already a key file")
    if settings.key_file.exists():
        raise Conflict(f"keys to-file refused: {settings.key_file} already exists; it was left unchanged")
    write_ring(settings.key_file, load_ring(settings))
    return settings.key_file


# -- counting ---------------------------------------------------------------------------------------


@dataclass
class KeyUsage:
    """Ciphertexts per key id (``other``: made with a key that is not in the ring)."""

    by_key: dict[str, int]
    by_column: dict[str, dict[str, int]]
    total: int
    other: int

    def stale(self, active: str) -> int:
        return self.total - self.by_key.get(active, 0)


def key_usage(session: Session, ring: KeyRing) -> KeyUsage:
    by_key = dict.fromkeys(ring.data_keys, 0)
    by_column: dict[str, dict[str, int]] = {}
    total = 0
    for enc in ENCRYPTED:
        for name in enc.columns():
            col = enc.table.c[name]
            counts = [func.count().filter(_under(col, kid)) for kid in ring.data_keys]
            stmt = select(func.count(), *counts).select_from(enc.table).where(_holds_ciphertext(col))
            row = session.execute(stmt).one()
            total += int(row[0])
            per = {kid: int(n) for kid, n in zip(ring.data_keys, row[1:], strict=True)}
            by_column[f"{enc.name}.{name}"] = per
            for kid, n in per.items():
                by_key[kid] += n
    return KeyUsage(by_key=by_key, by_column=by_column, total=total, other=total - sum(by_key.values()))


# -- rotating ---------------------------------------------------------------------------------------


@dataclass
class RotateReport:
    active: str
    added: bool
    rewritten: int = 0
    batches: int = 0
    finished: bool = False
    left: int = 0
    per_table: dict[str, int] = field(default_factory=dict)


Progress = Callable[[int], None]


def _holds_ciphertext(column: ColumnElement[bytes]) -> ColumnElement[bool]:
    """Not NULL (a staff member without a phone) and not the empty tombstone of an erased customer."""
    return and_(column.is_not(None), func.length(column) > 0)


def _stale_filter(enc: EncryptedTable, active: str) -> ColumnElement[bool]:
    return or_(
        *(and_(_holds_ciphertext(enc.table.c[c]), ~_under(enc.table.c[c], active)) for c in enc.columns())
    )


def count_stale(session: Session, active: str) -> int:
    return sum(
        int(session.scalar(select(func.count()).select_from(e.table).where(_stale_filter(e, active))) or 0)
        for e in ENCRYPTED
    )


def _rewrite_batch(
    session: Session, enc: EncryptedTable, cipher: FieldCipher, *, after: str | None, size: int
) -> tuple[int, str | None]:
    """Re-encrypt up to ``size`` rows with a field not under the active key, in key order after
    ``after``; the rows rewritten and the last key seen (None when the table is done)."""
    t = enc.table
    pk = t.c[enc.key]
    cols = enc.columns()
    if session.get_bind().dialect.name == "sqlite":
        # take the write lock before reading: a write by another connection between this batch's read
        # and its update would otherwise make the update fail (a stale WAL snapshot cannot be upgraded)
        session.execute(text(f'UPDATE "{t.name}" SET "{enc.key}" = "{enc.key}" WHERE 0 = 1'))
    stmt = select(pk, *(t.c[c] for c in cols)).where(_stale_filter(enc, cipher.ring.active))
    if after is not None:
        stmt = stmt.where(pk > after)
    rows = session.execute(stmt.order_by(pk).limit(size)).all()
    if not rows:
        return 0, None
    # one executemany per pattern of NULL fields (staff may have no phone); the WHERE clause compares
    # the old ciphertexts, so a row changed by someone else meanwhile is left for the next run
    groups: dict[tuple[bool, ...], list[dict[str, object]]] = {}
    for row in rows:
        key = row[0]
        params: dict[str, object] = {"b_key": key}
        present: list[bool] = []
        for fld, col, blob in zip(enc.fields, cols, row[1:], strict=True):
            present.append(bool(blob))
            if not blob:  # NULL or an erasure tombstone: nothing to re-encrypt
                continue
            plain = cipher.decrypt(blob, context=f"{enc.name}.{fld}:{key}")
            params[f"b_old_{col}"] = blob
            params[f"b_new_{col}"] = cipher.encrypt(plain, context=f"{enc.name}.{fld}:{key}")
        groups.setdefault(tuple(present), []).append(params)
    for pattern, batch in groups.items():
        live = [c for c, p in zip(cols, pattern, strict=True) if p]
        conditions = [pk == bindparam("b_key")]
        conditions += [t.c[c] == bindparam(f"b_old_{c}", type_=LargeBinary) for c in live]
        conditions += [~_holds_ciphertext(t.c[c]) for c, p in zip(cols, pattern, strict=True) if not p]
        stmt_u = (
            t.update()
            .where(and_(*conditions))
            .values({c: bindparam(f"b_new_{c}", type_=LargeBinary) for c in live})
        )
        session.connection().execute(stmt_u, batch)
    return len(rows), str(rows[-1][0])


def add_key(settings: Settings) -> KeyRing:
    """Add a fresh data key to the ring file and make it the active one; the new ring."""
    ring = load_ring(settings)
    kid = next_key_id(ring)
    new = KeyRing(
        active=kid, data_keys={**ring.data_keys, kid: secrets.token_bytes(32)}, index_key=ring.index_key
    )
    write_ring(settings.key_file, new)
    return new


def rotate(
    settings: Settings,
    *,
    resume: bool = False,
    batch_size: int = DEFAULT_BATCH,
    max_batches: int | None = None,
    on_start: Callable[[int], None] | None = None,
    on_batch: Progress | None = None,
    actor: str = "system",
) -> RotateReport:
    """Add a key (unless ``resume``) and re-encrypt every field not yet under the active key.

    ``max_batches`` stops after that many batches (each committed), leaving the rest for a later run.
    A plain run refuses while an earlier rotation is unfinished, so keys do not pile up."""
    _refuse_env_key(settings, "rotate")
    if batch_size < 1:
        raise InputRefused(f"--batch-size must be at least 1, got {batch_size}")
    with keys_lock(settings):
        ring = load_ring(settings)
        with unit_of_work(settings) as session:
            usage = key_usage(session, ring)
        stale = usage.stale(ring.active)
        if usage.other:
            raise ConfigError(
                f"{usage.other} ciphertexts were made with a key that is not in the ring "
                f"{settings.key_file}; they cannot be re-encrypted (was a key retired too early?)"
            )
        added = False
        if not resume:
            if stale:
                raise Conflict(
                    f"an earlier rotation to key {ring.active!r} is unfinished: {stale} ciphertexts are "
                    "still under older keys; finish it first with `omnibank keys rotate --resume`"
                )
            ring = add_key(settings)
            added = True
        reset_ciphers()
        cipher = FieldCipher(ring)
        report = RotateReport(active=ring.active, added=added)
        if on_start is not None:
            with unit_of_work(settings) as session:
                on_start(count_stale(session, ring.active))
        for enc in ENCRYPTED:
            after: str | None = None
            while max_batches is None or report.batches < max_batches:
                with unit_of_work(settings) as session:
                    done, after = _rewrite_batch(session, enc, cipher, after=after, size=batch_size)
                if after is None:
                    break
                report.batches += 1
                report.rewritten += done
                report.per_table[enc.name] = report.per_table.get(enc.name, 0) + done
                if on_batch is not None:
                    on_batch(done)
        with unit_of_work(settings) as session:
            report.left = count_stale(session, ring.active)
            report.finished = report.left == 0
            audit.record(
                session,
                actor=actor,
                action="keys.rotate",
                subject_type="key",
                subject_id=ring.active,
                detail={"added": added, "rows": report.rewritten, "finished": report.finished},
            )
        return report


def retire(settings: Settings, kid: str, *, actor: str = "system") -> KeyRing:
    """Remove data key ``kid`` from the ring; refused while it is active or any ciphertext uses it."""
    _refuse_env_key(settings, "retire")
    with keys_lock(settings):
        ring = load_ring(settings)
        if kid not in ring.data_keys:
            raise NotFound(
                f"keys retire: no key {kid!r} in {settings.key_file} (keys: {', '.join(ring.data_keys)})"
            )
        if kid == ring.active:
            raise Conflict(f"keys retire refused: {kid!r} is the active key; rotate to a new key first")
        with unit_of_work(settings) as session:
            usage = key_usage(session, ring)
        used = usage.by_key.get(kid, 0)
        if used:
            where = ", ".join(f"{col} {per[kid]}" for col, per in usage.by_column.items() if per.get(kid))
            raise Conflict(
                f"keys retire refused: key {kid!r} still encrypts {used} values ({where}); "
                "finish the rotation first: omnibank keys rotate --resume"
            )
        new = KeyRing(
            active=ring.active,
            data_keys={k: v for k, v in ring.data_keys.items() if k != kid},
            index_key=ring.index_key,
        )
        with unit_of_work(settings) as session:  # recorded first: a failure leaves the key in place
            audit.record(
                session, actor=actor, action="keys.retire", subject_type="key", subject_id=kid, detail={}
            )
            write_ring(settings.key_file, new)
        reset_ciphers()
        return new
