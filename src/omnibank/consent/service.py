"""Consent per customer and purpose (PIPL): record grants and revocations, answer "may we?".

The answer for a purpose is its latest record. Without any record: ``marketing`` falls back to the
customer file's ``marketing_consent`` flag; ``profiling`` is allowed until refused (PIPL art. 24 lets a
person refuse it); ``data_sharing`` needs a separate consent (PIPL art. 23), so it is refused.

Every grant and revocation bumps the ``consent`` data version in the same transaction, so the profile
snapshot the DuckDB segment engine reads is rebuilt on its next use; the PostgreSQL engine and
:func:`omnibank.segments.engine.customer_facts` read the records directly. Revocation takes effect at once.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omnibank.audit import service as audit
from omnibank.consent.models import CONSENT_CHANNELS, PURPOSES, ConsentRecord
from omnibank.customers.models import Customer, CustomerMerge
from omnibank.db import versions
from omnibank.errors import AppError, NotFound
from omnibank.kit.masking import mask_numbers

#: the answer for a purpose without any record (``marketing``: the customer file's flag instead)
DEFAULT_WITHOUT_RECORD = {"profiling": True, "data_sharing": False}
MAX_EVIDENCE = 200
_CHUNK = 900
_SMALL_SET = 5_000  # up to this many candidates: ask per chunk; more: read every customer once


def effective_marketing_sql(customers_alias: str = "c") -> str:
    """SQL (SQLite, PostgreSQL) for a customer's effective marketing consent: the latest ``marketing``
    record, else the customer file's flag. ``customers_alias`` names the customers table in the query."""
    a = customers_alias
    return (
        "COALESCE((SELECT r.granted FROM consent_records r "
        f"WHERE r.customer_id = {a}.customer_id AND r.purpose = 'marketing' "
        f"ORDER BY r.id DESC LIMIT 1), {a}.marketing_consent)"
    )


def check_purpose(purpose: str) -> str:
    if purpose not in PURPOSES:
        raise AppError(f"purpose: {purpose!r} is not one of {', '.join(PURPOSES)}", code="bad_purpose")
    return purpose


def check_channel(channel: str) -> str:
    if channel not in CONSENT_CHANNELS:
        raise AppError(
            f"channel: {channel!r} is not one of {', '.join(CONSENT_CHANNELS)}", code="bad_channel"
        )
    return channel


def _customer(session: Session, customer_id: str) -> Customer:
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"no customer {customer_id}")
    return customer


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i : i + _CHUNK]


def record_consent(
    session: Session,
    customer_id: str,
    *,
    purpose: str,
    granted: bool,
    channel: str,
    evidence: str = "",
    actor: str,
    source: str = "cli",
    at: datetime | None = None,
) -> ConsentRecord:
    """Append a grant or revocation (audited). Refuses an unknown purpose, channel or customer, a customer
    merged into another (record it for the survivor) and an erased customer."""
    check_purpose(purpose)
    check_channel(channel)
    evidence = evidence.strip()
    if len(evidence) > MAX_EVIDENCE:
        raise AppError(f"evidence: at most {MAX_EVIDENCE} characters (a reference such as a form id)")
    evidence = mask_numbers(evidence)
    moment = at or datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError("naive datetime refused: every datetime must carry a time zone")
    customer = _customer(session, customer_id)
    if customer.erased_at is not None:
        raise AppError(
            f"customer {customer_id} was erased; no consent can be recorded", code="customer_erased"
        )
    merge = session.get(CustomerMerge, customer_id)
    if merge is not None:
        raise AppError(
            f"customer {customer_id} was merged into {merge.survivor_id}: record consent for "
            f"{merge.survivor_id}",
            code="customer_merged",
        )
    rec = ConsentRecord(
        customer_id=customer_id,
        purpose=purpose,
        granted=granted,
        at=moment,
        channel=channel,
        evidence=evidence,
        actor=actor,
    )
    session.add(rec)
    session.flush()
    versions.bump(session, "consent")
    audit.record(
        session,
        actor=actor,
        action="consent.grant" if granted else "consent.revoke",
        subject_type="customer",
        subject_id=customer_id,
        detail={"purpose": purpose, "channel": channel, "evidence": evidence, "record": rec.id},
        source=source,
        at=moment,
    )
    return rec


def grant(session: Session, customer_id: str, *, purpose: str, channel: str, evidence: str = "", actor: str,
          source: str = "cli") -> ConsentRecord:  # fmt: skip
    return record_consent(
        session, customer_id, purpose=purpose, granted=True, channel=channel, evidence=evidence, actor=actor,
        source=source,
    )  # fmt: skip


def revoke(session: Session, customer_id: str, *, purpose: str, channel: str, evidence: str = "", actor: str,
           source: str = "cli") -> ConsentRecord:  # fmt: skip
    return record_consent(
        session, customer_id, purpose=purpose, granted=False, channel=channel, evidence=evidence, actor=actor,
        source=source,
    )  # fmt: skip


def history(session: Session, customer_id: str) -> list[ConsentRecord]:
    """Every record of the customer, oldest first."""
    return list(
        session.scalars(
            select(ConsentRecord).where(ConsentRecord.customer_id == customer_id).order_by(ConsentRecord.id)
        )
    )


@dataclass(frozen=True)
class ConsentState:
    purpose: str
    allowed: bool
    latest: ConsentRecord | None  # None: the answer is the default (the customer file for marketing)


def current(session: Session, customer_id: str) -> list[ConsentState]:
    """The answer for every purpose, and the record it comes from."""
    customer = _customer(session, customer_id)
    latest: dict[str, ConsentRecord] = {}
    for rec in history(session, customer_id):
        latest[rec.purpose] = rec
    states = []
    for purpose in PURPOSES:
        newest = latest.get(purpose)
        if newest is not None:
            states.append(ConsentState(purpose, newest.granted, newest))
        elif purpose == "marketing":
            states.append(ConsentState(purpose, bool(customer.marketing_consent), None))
        else:
            states.append(ConsentState(purpose, DEFAULT_WITHOUT_RECORD[purpose], None))
    return states


def _latest(session: Session, purpose: str, customer_ids: Sequence[str] | None) -> dict[str, bool]:
    """customer → granted, from the latest record of ``purpose`` (customers without a record left out)."""
    newest = select(ConsentRecord.customer_id, func.max(ConsentRecord.id).label("id")).where(
        ConsentRecord.purpose == purpose
    )
    result: dict[str, bool] = {}
    groups: Iterable[Sequence[str] | None] = [None] if customer_ids is None else _chunks(customer_ids)
    for chunk in groups:
        stmt = newest if chunk is None else newest.where(ConsentRecord.customer_id.in_(chunk))
        sub = stmt.group_by(ConsentRecord.customer_id).subquery()
        rows = session.execute(
            select(ConsentRecord.customer_id, ConsentRecord.granted).join(sub, sub.c.id == ConsentRecord.id)
        )
        result.update({cid: bool(granted) for cid, granted in rows})
    return result


def allowed_many(session: Session, customer_ids: Collection[str], purpose: str) -> dict[str, bool]:
    """The answer for ``purpose`` for each of these customers (unknown and erased customers: not
    allowed)."""
    check_purpose(purpose)
    ids = list(dict.fromkeys(customer_ids))
    answers = _latest(session, purpose, ids)
    for chunk in _chunks(ids):
        erased = select(Customer.customer_id).where(
            Customer.customer_id.in_(chunk), Customer.erased_at.is_not(None)
        )
        answers.update({cid: False for cid in session.scalars(erased)})
    missing = [cid for cid in ids if cid not in answers]
    if purpose == "marketing":
        for chunk in _chunks(missing):
            rows = session.execute(
                select(Customer.customer_id, Customer.marketing_consent).where(
                    Customer.customer_id.in_(chunk)
                )
            )
            answers.update({cid: bool(flag) for cid, flag in rows})
    else:
        known: set[str] = set()
        for chunk in _chunks(missing):
            known.update(session.scalars(select(Customer.customer_id).where(Customer.customer_id.in_(chunk))))
        answers.update({cid: DEFAULT_WITHOUT_RECORD[purpose] for cid in known})
    return {cid: answers.get(cid, False) for cid in ids}


def allowed(session: Session, customer_id: str, purpose: str) -> bool:
    """May we use this customer's data for ``purpose`` now? (Journeys and campaigns ask this.)"""
    check_purpose(purpose)
    _customer(session, customer_id)
    return allowed_many(session, [customer_id], purpose)[customer_id]


def allowed_set(session: Session, purpose: str, candidates: Collection[str] | None = None) -> frozenset[str]:
    """The customers (of ``candidates``, or all) we may use for ``purpose`` now: what a campaign or journey
    with a ``purpose`` intersects its audience with, so a revocation stops it at its next run."""
    check_purpose(purpose)
    if candidates is not None and len(candidates) <= _SMALL_SET:
        return frozenset(cid for cid, ok in allowed_many(session, candidates, purpose).items() if ok)
    latest = _latest(session, purpose, None)
    rows = session.execute(
        select(Customer.customer_id, Customer.marketing_consent).where(Customer.erased_at.is_(None))
    )
    if purpose == "marketing":
        everyone = {cid for cid, flag in rows if latest.get(cid, bool(flag))}
    else:
        default = DEFAULT_WITHOUT_RECORD[purpose]
        everyone = {cid for cid, _flag in rows if latest.get(cid, default)}
    return frozenset(everyone if candidates is None else everyone.intersection(candidates))


def revoked(session: Session, purpose: str, customer_ids: Collection[str] | None = None) -> set[str]:
    """The customers (of ``customer_ids``, or all) whose latest record for ``purpose`` is a revocation."""
    check_purpose(purpose)
    ids = None if customer_ids is None else list(dict.fromkeys(customer_ids))
    return {cid for cid, granted in _latest(session, purpose, ids).items() if not granted}
