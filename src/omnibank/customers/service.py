"""Customers: loading (data contract customers.csv), lookup by blind index, the masked profile."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import Index, Table, func, select
from sqlalchemy.orm import Session

from omnibank.audit import service as audit
from omnibank.customers.models import Customer
from omnibank.customers.repository import Scope, scoped
from omnibank.customers.values import CHANNEL_PREFS, GENDERS, OCCUPATIONS, RISK_LEVELS
from omnibank.db import versions
from omnibank.db.upsert import upsert_changed
from omnibank.errors import CustomerErased
from omnibank.kit import validate as v
from omnibank.kit.crypto import FieldCipher, KeyRing
from omnibank.kit.idcard import valid_id_number
from omnibank.kit.loading import CsvRecord, LoadReport, LoadRun, csv_source
from omnibank.kit.masking import mask_free_text, mask_id_number, mask_name, mask_phone
from omnibank.kit.money import MoneyError, parse_cny, to_fen
from omnibank.orgs import repository as orgs_repo

CUSTOMER_COLUMNS = [
    "customer_id",
    "name",
    "gender",
    "birth_date",
    "phone",
    "id_number",
    "branch_id",
    "rm_id",
    "aum",
    "occupation",
    "risk_tolerance",
    "channel_pref",
    "marketing_consent",
    "registered_at",
]
PERSONAL = ("name", "phone", "id_number")
_BATCH = 5000
_TABLE: Table = Customer.__table__  # type: ignore[assignment]
_EARLIEST = date(1900, 1, 1)


def _masked_line(values: dict[str, str]) -> str:
    masked = dict(
        values,
        name=mask_name(values["name"]),
        phone=mask_phone(values["phone"]),
        id_number=mask_id_number(values["id_number"]),
    )
    return ",".join(masked[c] for c in CUSTOMER_COLUMNS)


def normalise_id_number(value: str) -> str:
    return value.strip().upper()


@dataclass(frozen=True)
class _PrepareContext:
    """What validating and encrypting a batch needs; picklable, so a worker process can hold it."""

    ring: KeyRing
    known_orgs: frozenset[str]
    known_staff: frozenset[str]
    today: date
    now: datetime
    erased: frozenset[str] = frozenset()  # erased customers: their personal data is never loaded again


_Prepared = tuple[list[dict[str, object]], list[tuple[int, str, str]]]


def _prepare(records: list[CsvRecord], ctx: _PrepareContext, cipher: FieldCipher) -> _Prepared:
    """Validate and encrypt one batch: the store's rows and the rejects (line, reason, masked raw).
    Pure: touches no store, so it runs in the loading process or in a worker alike."""
    rows: list[dict[str, object]] = []
    rejects: list[tuple[int, str, str]] = []
    enc = cipher.encrypt
    bidx = cipher.blind_index
    today = ctx.today
    for rec in records:
        row = rec.values
        if rec.error or row is None:
            rejects.append((rec.line, rec.error or "unreadable", mask_free_text(rec.raw)))
            continue
        try:
            cid = v.code("customer_id", row["customer_id"])
            if cid in ctx.erased:
                raise v.FieldError("customer_id", f"customer {cid} was erased; its data is not loaded again")
            name = v.text("name", row["name"], max_len=64)
            gender = v.choice("gender", row["gender"], GENDERS)
            birth = v.iso_date("birth_date", row["birth_date"])
            if not _EARLIEST <= birth <= today:
                raise v.FieldError("birth_date", f"{birth} is not between 1900-01-01 and today")
            phone = v.mobile("phone", row["phone"])
            id_number = normalise_id_number(row["id_number"])
            if not valid_id_number(id_number):
                raise v.FieldError(
                    "id_number", "not an 18-character resident ID with a valid GB 11643 check digit"
                )
            branch = v.code("branch_id", row["branch_id"])
            if branch not in ctx.known_orgs:
                raise v.FieldError("branch_id", f"unknown org {branch} (load orgs.csv first)")
            rm = row["rm_id"] or None
            if rm is not None and rm not in ctx.known_staff:
                raise v.FieldError("rm_id", f"unknown staff {rm} (load staff.csv first)")
            try:
                aum = parse_cny(row["aum"])
            except MoneyError as exc:
                raise v.FieldError("aum", str(exc)) from None
            occupation = v.choice("occupation", row["occupation"], OCCUPATIONS)
            risk = v.choice("risk_tolerance", row["risk_tolerance"], RISK_LEVELS)
            channel = v.choice("channel_pref", row["channel_pref"], CHANNEL_PREFS)
            consent = v.boolean("marketing_consent", row["marketing_consent"])
            registered = v.iso_date("registered_at", row["registered_at"])
            if not birth <= registered <= today:
                raise v.FieldError("registered_at", f"{registered} is not between birth_date and today")
        except v.FieldError as exc:
            rejects.append((rec.line, str(exc), _masked_line(row)))
            continue
        aum_fen = to_fen(aum)
        fingerprint = cipher.fingerprint(
            cid, name, gender, row["birth_date"], phone, id_number, branch, rm or "",
            str(aum_fen), occupation, risk, channel, str(consent), row["registered_at"],
        )  # fmt: skip
        rows.append(
            {
                "customer_id": cid,
                "name_enc": enc(name, context=f"customers.name:{cid}"),
                "phone_enc": enc(phone, context=f"customers.phone:{cid}"),
                "phone_bidx": bidx("phone", phone),
                "id_number_enc": enc(id_number, context=f"customers.id_number:{cid}"),
                "id_number_bidx": bidx("id_number", id_number),
                "gender": gender,
                "birth_date": birth,
                "branch_id": branch,
                "rm_id": rm,
                "aum_fen": aum_fen,
                "occupation": occupation,
                "risk_tolerance": risk,
                "channel_pref": channel,
                "marketing_consent": consent,
                "registered_at": registered,
                "fingerprint": fingerprint,
                "created_at": ctx.now,
                "updated_at": ctx.now,
                "erased_at": None,
            }
        )
    return rows, rejects


_worker: tuple[_PrepareContext, FieldCipher] | None = None


def _worker_init(ctx: _PrepareContext) -> None:
    global _worker
    _worker = (ctx, FieldCipher(ctx.ring))


def _worker_prepare(records: list[CsvRecord]) -> _Prepared:
    assert _worker is not None, "worker not initialised"
    return _prepare(records, *_worker)


def _batches(records: Iterator[CsvRecord], size: int) -> Iterator[list[CsvRecord]]:
    batch: list[CsvRecord] = []
    for rec in records:
        batch.append(rec)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _write(session: Session, rows: list[dict[str, object]]) -> int:
    """Upsert one batch; of rows for the same customer only the last one applies."""
    last = {row["customer_id"]: row for row in rows}
    return upsert_changed(
        session, _TABLE, list(last.values()), key="customer_id", keep_on_update=["created_at", "erased_at"]
    )


PARALLEL_MIN_BYTES = 8 << 20  # below this (about 50,000 customers) a worker process costs more than it saves


def load_customers(
    session: Session,
    path: Path,
    *,
    run: LoadRun,
    cipher: FieldCipher,
    today: date,
    progress: bool = True,
    parallel: bool | None = None,
    encoding: str = "utf-8",
) -> LoadReport:
    """Upsert customers by ``customer_id``. A row that breaks the contract is rejected with its reason;
    a row identical to what is stored changes nothing and is counted as a duplicate.

    This process parses the file and writes the store; for large files (or ``parallel=True``) a worker
    process validates and encrypts the batches meanwhile, in order, so both cores work."""
    ctx = _PrepareContext(
        ring=cipher.ring,
        known_orgs=frozenset(orgs_repo.org_ids(session)),
        known_staff=frozenset(orgs_repo.staff_ids(session)),
        today=today,
        now=datetime.now(UTC),
        erased=frozenset(
            session.scalars(select(Customer.customer_id).where(Customer.erased_at.is_not(None)))
        ),
    )
    size = path.stat().st_size if path.is_file() else 0
    if parallel is None:
        parallel = (os.cpu_count() or 1) > 1 and size >= PARALLEL_MIN_BYTES
    good = changed = 0
    rebuild = _defer_indexes(session, expected_rows=size // _ROW_BYTES)
    with csv_source(
        path, required=CUSTOMER_COLUMNS, description="customers", progress=progress, encoding=encoding,
        personal={"name": mask_name, "phone": mask_phone, "id_number": mask_id_number},
    ) as records:  # fmt: skip
        batches = _batches(records, _BATCH)
        pool = None
        if parallel:
            pool = mp.get_context("spawn").Pool(1, initializer=_worker_init, initargs=(ctx,))
            results: Iterator[_Prepared] = pool.imap(_worker_prepare, batches)
        else:
            results = (_prepare(batch, ctx, cipher) for batch in batches)
        try:
            for rows, rejects in results:
                for line, reason, raw in rejects:
                    run.reject(line, reason, raw)
                good += len(rows)
                changed += _write(session, rows)
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
    for index in rebuild:
        index.create(session.connection())
    run.report.loaded = changed
    if changed:
        versions.bump(session, "customers")
    run.report.duplicates = good - changed
    return run.report


_ROW_BYTES = 120  # a customers.csv row is about this long


def _defer_indexes(session: Session, *, expected_rows: int) -> list[Index]:
    """For a load that brings at least as many rows as the table holds, drop the secondary indexes on
    SQLite and let the caller rebuild them at the end: one sorted build instead of a random B-tree insert
    per row and index. Inside the load's transaction, so an interrupted load gets them back."""
    conn = session.connection()
    if conn.dialect.name != "sqlite":
        return []
    held = session.scalar(select(func.count()).select_from(Customer)) or 0
    if expected_rows < max(held, PARALLEL_MIN_BYTES // _ROW_BYTES):
        return []
    indexes = sorted(_TABLE.indexes, key=lambda i: i.name or "")
    for index in indexes:
        index.drop(conn)
    return indexes


def find_customers(
    session: Session,
    cipher: FieldCipher,
    *,
    actor: str,
    phone: str | None = None,
    id_number: str | None = None,
    scope: Scope | None = None,
    source: str = "cli",
) -> list[Customer]:
    """Exact lookup through the blind index, within ``scope`` (default: the whole bank); the search itself
    is audited (it touches personal data)."""
    stmt = select(Customer).where(Customer.erased_at.is_(None))
    if phone:
        stmt = stmt.where(Customer.phone_bidx == cipher.blind_index("phone", phone.strip()))
    if id_number:
        stmt = stmt.where(
            Customer.id_number_bidx == cipher.blind_index("id_number", normalise_id_number(id_number))
        )
    found = list(session.scalars(scoped(stmt, scope or Scope.whole_bank()).order_by(Customer.customer_id)))
    audit.record(
        session,
        actor=actor,
        action="customer.find",
        subject_type="customer",
        subject_id=None,
        detail={"by": "phone" if phone else "id_number", "matches": [c.customer_id for c in found]},
        source=source,
    )
    return found


def refuse_erased(customer: Customer) -> None:
    """Raise :class:`CustomerErased` for an erased customer: nothing personal of it exists any more."""
    if customer.erased_at is not None:
        when = customer.erased_at.strftime("%Y-%m-%d %H:%M UTC")
        raise CustomerErased(
            f"customer {customer.customer_id} was erased on {when}: its personal data no longer exists "
            "(ledgers and the audit trail keep the customer number)"
        )
