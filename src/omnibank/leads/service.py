"""Leads for branch staff (J3 opportunity hand-off): created in bulk (by journeys or by hand), followed up
(new → contacted → won / lost), escalated to the branch manager when nobody made contact in time.

Every change returns the events to emit *after* the transaction commits (``lead.created``,
``lead.contacted``, ``lead.won``, ``lead.lost``, ``lead.escalated``); their ids are deterministic
(``lead:<lead_id>:<action>``), so emitting them again adds nothing. Each event is also kept as a
``lead_history`` row with ``emitted_at`` empty until :func:`emit_events` has put it in the event log, so
events lost to a crash between commit and emit go out with the next :func:`emit_pending`.

Escalation, decided: only leads still **new** past their due time escalate. A contacted lead has had its
hand-off (the customer was reached); how long it then takes to win or lose is the RM's pipeline, not a
missed hand-off, and journeys that care wait for ``lead.won`` themselves. A lead escalates once: to the
branch manager at the lead's org or its nearest ancestor; it keeps its owner, and the manager sees it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Integer, Result, Table, select, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from omnibank.audit import service as audit
from omnibank.config import Settings
from omnibank.customers.models import Customer
from omnibank.db import unit_of_work
from omnibank.db.types import UTCDateTime
from omnibank.errors import AppError, Conflict, CustomerErased, NotFound
from omnibank.events.emit import Emitted, emit
from omnibank.kit.masking import mask_numbers
from omnibank.leads.models import CLOSED_STATUSES, LEAD_STATUSES, Lead, LeadHistory
from omnibank.orgs.models import Org, Staff

DEFAULT_DUE_IN = timedelta(days=2)
#: the moves a lead may make; won and lost are closed for good
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("contacted", "won", "lost"),
    "contacted": ("won", "lost"),
    "won": (),
    "lost": (),
}
EVENT_TYPES = tuple(f"lead.{a}" for a in ("created", "contacted", "won", "lost", "escalated"))
_CHUNK = 500
_SOURCE = re.compile(r"^[a-z][a-z0-9_]*(:[A-Za-z0-9_.:-]{1,90})?$")
_CODE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_CUSTOMER = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

Event = dict[str, Any]
_LEADS: Table = Lead.__table__  # type: ignore[assignment]
_HISTORY: Table = LeadHistory.__table__  # type: ignore[assignment]


class UnknownCustomers(NotFound):
    """Leads were asked for customers the store does not know; nothing was written."""

    code = "unknown_customers"


class TransitionRefused(Conflict):
    code = "lead_transition_refused"


class LeadKeyReused(Conflict):
    code = "lead_key_reused"


@dataclass(frozen=True)
class LeadRequest:
    """One lead to create. ``key`` deduplicates: a key seen before gives that lead and creates nothing (a
    journey passes e.g. ``<journey>:<step>:<entry>``). Due at ``due_at``, else ``due_in`` after ``now``,
    else :data:`DEFAULT_DUE_IN` after it. ``note`` must not carry personal data (digit runs are masked)."""

    key: str
    customer_id: str
    source: str = "manual"
    journey: str | None = None
    step: str | None = None
    product_id: str | None = None
    note: str | None = None
    due_at: datetime | None = None
    due_in: timedelta | None = None


@dataclass(frozen=True)
class LeadRead:
    lead_id: str
    key: str
    customer_id: str
    source: str
    journey: str | None
    step: str | None
    product_id: str | None
    note: str | None
    owner_staff_id: str | None
    org_id: str
    status: str
    due_at: datetime
    created_at: datetime
    updated_at: datetime
    contacted_at: datetime | None
    closed_at: datetime | None
    escalated_at: datetime | None
    escalated_to: str | None

    @property
    def closed(self) -> bool:
        return self.status in CLOSED_STATUSES

    def overdue(self, now: datetime) -> bool:
        """Still new (nobody made contact) and past its due time."""
        return self.status == "new" and self.due_at <= now


@dataclass(frozen=True)
class HistoryRead:
    lead_id: str
    action: str
    at: datetime
    from_status: str | None
    to_status: str
    by: str
    note: str | None
    staff_id: str | None


class Created(list[LeadRead]):
    """What :func:`create_leads` did: a list with the lead of each request, in request order (the same
    lead for requests sharing a key), plus ``new`` (the leads this call created) and ``events`` (their
    ``lead.created`` events, to emit after commit)."""

    def __init__(self, leads: Iterable[LeadRead], new: list[LeadRead], events: list[Event]):
        super().__init__(leads)
        self.new = new
        self.events = events


@dataclass(frozen=True)
class Change:
    """A status change: the lead as it stands now and the event to emit after commit."""

    lead: LeadRead
    events: list[Event]


@dataclass(frozen=True)
class Escalation:
    escalated: list[LeadRead]  # handed to a branch manager by this run
    unassigned: list[LeadRead]  # overdue, but no branch manager at their org or above it (retried next run)
    events: list[Event] = field(default_factory=list)


# ------------------------------------------------------------------------------------------- helpers


def lead_id_for(key: str) -> str:
    """The lead id of a dedupe key: deterministic, so a retried creation names the same lead (and events)."""
    return "L" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:20].upper()


def lead_read(lead: Lead) -> LeadRead:
    return LeadRead(**{name: getattr(lead, name) for name in LeadRead.__dataclass_fields__})


def _aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None:
        raise AppError(f"{name}: a naive datetime is refused; give a time zone")
    return value


def _rowcount(result: Result[Any]) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


def clean_note(note: str | None) -> str | None:
    """A note as stored: trimmed, digit runs that could be phones or ID numbers masked, at most 500."""
    if note is None:
        return None
    text = mask_numbers(note.strip())
    if len(text) > 500:
        raise AppError(f"note: at most 500 characters (this one has {len(text)})")
    return text or None


def _check(r: LeadRequest, index: int) -> None:
    where = f"lead request {index + 1} (key {r.key!r})"
    if not r.key or len(r.key) > 200:
        raise AppError(f"lead request {index + 1}: key must have 1 to 200 characters")
    if not _CUSTOMER.match(r.customer_id or ""):
        raise AppError(f"{where}: customer_id {r.customer_id!r} is not a customer number")
    if not _SOURCE.match(r.source or ""):
        raise AppError(f"{where}: source {r.source!r} must look like 'manual' or 'journey:<id>'")
    for name in ("journey", "step", "product_id"):
        value = getattr(r, name)
        if value is not None and not _CODE.match(value):
            raise AppError(f"{where}: {name} {value!r} must be 1 to 64 of A-Z a-z 0-9 _ . : -")
    if r.due_at is not None:
        _aware(f"{where}: due_at", r.due_at)
    if r.due_in is not None and r.due_in <= timedelta(0):
        raise AppError(f"{where}: due_in must be positive")
    if r.note is not None and len(r.note) > 500:
        raise AppError(f"{where}: note: at most 500 characters")


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i : i + _CHUNK]


def _leads_by_key(session: Session, keys: Sequence[str]) -> dict[str, LeadRead]:
    """The leads of ``keys`` that exist, read as plain rows (no ORM objects: a batch may be thousands)."""
    columns = [_LEADS.c[name] for name in LeadRead.__dataclass_fields__]
    found: dict[str, LeadRead] = {}
    for part in _chunks(keys):
        for row in session.execute(select(*columns).where(_LEADS.c.key.in_(part))):
            lead = LeadRead(*row)
            found[lead.key] = lead
    return found


def _same_lead(lead: LeadRead, r: LeadRequest) -> None:
    if lead.customer_id != r.customer_id:
        raise LeadKeyReused(
            f"lead key {r.key!r} names lead {lead.lead_id} of customer {lead.customer_id}, "
            f"not of {r.customer_id}; a key names one lead",
            details={"key": r.key, "lead_id": lead.lead_id},
        )


def _event(
    *,
    action: str,
    lead_id: str,
    customer_id: str,
    at: datetime,
    staff_id: str | None,
    product_id: str | None,
    source: str,
    journey: str | None,
    step: str | None,
    org_id: str,
    status: str,
) -> Event:
    return {
        "event_id": f"lead:{lead_id}:{action}",
        "type": f"lead.{action}",
        "customer_id": customer_id,
        "ts": at.astimezone(UTC).isoformat(),
        "lead_id": lead_id,
        "staff_id": staff_id,
        "product_id": product_id,
        "source": source,
        "journey": journey,
        "step": step,
        "org_id": org_id,
        "status": status,
    }


def _lead_event(lead: LeadRead, action: str, at: datetime, staff_id: str | None) -> Event:
    return _event(
        action=action, lead_id=lead.lead_id, customer_id=lead.customer_id, at=at, staff_id=staff_id,
        product_id=lead.product_id, source=lead.source, journey=lead.journey, step=lead.step,
        org_id=lead.org_id, status=lead.status,
    )  # fmt: skip


def _pg_array_type(table: Table, column: str) -> str:
    kind = table.c[column].type
    if isinstance(kind, UTCDateTime):
        return "timestamptz[]"
    if isinstance(kind, Integer):
        return "bigint[]"
    return "text[]"


def _pg_unnest_insert(
    session: Session, table: Table, rows: list[dict[str, Any]], *, returning: str | None = None
) -> list[Any]:
    """PostgreSQL: the rows as one ``INSERT … SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING``: one
    short statement whatever the batch size (a multi-row VALUES of thousands of rows costs the driver
    more to parse than the server to run). Datetimes go as they are (aware, for timestamptz)."""
    columns = list(rows[0])
    arrays = ", ".join(f"CAST(:{c} AS {_pg_array_type(table, c)})" for c in columns)
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) "
        "ON CONFLICT DO NOTHING" + (f" RETURNING {returning}" if returning else "")
    )
    params = {c: [row[c] for row in rows] for c in columns}
    result = session.execute(text(sql), params)
    return [row[0] for row in result] if returning else []


def _insert_ignore(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Insert the lead rows whose key (and id) is free, also against a concurrent transaction inserting
    the same key (``ON CONFLICT DO NOTHING``); the ids inserted."""
    if session.connection().dialect.name == "postgresql":
        return set(_pg_unnest_insert(session, _LEADS, rows, returning="lead_id"))
    stmt = sqlite.insert(_LEADS).on_conflict_do_nothing().returning(_LEADS.c.lead_id)
    return {row[0] for row in session.execute(stmt, rows)}


def _insert_history(session: Session, rows: list[dict[str, Any]]) -> None:
    if session.connection().dialect.name == "postgresql":
        _pg_unnest_insert(session, _HISTORY, rows)
    else:
        session.execute(_HISTORY.insert(), rows)


# -------------------------------------------------------------------------------------------- create


def create_leads(
    session: Session, requests: Sequence[LeadRequest], *, now: datetime, actor: str = "system:leads"
) -> Created:
    """Create leads in bulk (a few statements for the whole batch, none per lead); one per key.

    Each lead goes to the customer's relationship manager (``customers.rm_id``, when that staff member
    exists) or else to the queue of the customer's branch (``org_id`` = ``customers.branch_id``, no owner).
    Nothing is written when a request is invalid, names an unknown or erased customer
    (:class:`UnknownCustomers` lists them in ``details["customer_ids"]``), or reuses a key of another
    customer's lead. The new leads are audited as one entry."""
    _aware("now", now)
    wanted: dict[str, LeadRequest] = {}
    for i, r in enumerate(requests):
        _check(r, i)
        wanted.setdefault(r.key, r)
    if not wanted:
        return Created([], [], [])
    found = _leads_by_key(session, list(wanted))
    for key, lead in found.items():
        _same_lead(lead, wanted[key])
    todo = [r for key, r in wanted.items() if key not in found]
    new: list[LeadRead] = []
    if todo:
        customers: dict[str, tuple[str, str | None, datetime | None]] = {}
        ids = sorted({r.customer_id for r in todo})
        for part in _chunks(ids):
            stmt = select(Customer.customer_id, Customer.branch_id, Customer.rm_id, Customer.erased_at)
            for cid, branch, rm, erased in session.execute(stmt.where(Customer.customer_id.in_(part))):
                customers[cid] = (branch, rm, erased)
        missing = [cid for cid in ids if cid not in customers]
        if missing:
            raise UnknownCustomers(
                f"no customer {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''} "
                f"({len(missing)} unknown); no lead was created",
                details={"customer_ids": missing},
            )
        erased_ids = [cid for cid in ids if customers[cid][2] is not None]
        if erased_ids:
            raise CustomerErased(
                f"customer {', '.join(erased_ids[:5])} was erased; no lead was created",
                details={"customer_ids": erased_ids},
            )
        rms = sorted({rm for _, rm, _ in customers.values() if rm})
        staff: set[str] = set()
        for part in _chunks(rms):
            staff.update(session.scalars(select(Staff.staff_id).where(Staff.staff_id.in_(part))))
        rows: list[dict[str, Any]] = []
        for r in todo:
            branch, rm, _ = customers[r.customer_id]
            due = r.due_at if r.due_at is not None else now + (r.due_in or DEFAULT_DUE_IN)
            rows.append(
                {
                    "lead_id": lead_id_for(r.key), "key": r.key, "customer_id": r.customer_id,
                    "source": r.source, "journey": r.journey, "step": r.step, "product_id": r.product_id,
                    "note": clean_note(r.note), "owner_staff_id": rm if rm in staff else None,
                    "org_id": branch, "status": "new", "due_at": due, "created_at": now, "updated_at": now,
                    "contacted_at": None, "closed_at": None, "escalated_at": None, "escalated_to": None,
                }
            )  # fmt: skip
        inserted = _insert_ignore(session, rows)
        new = [LeadRead(**row) for row in rows if row["lead_id"] in inserted]
        if len(new) < len(rows):  # another transaction created some of these keys meanwhile
            raced = _leads_by_key(session, [row["key"] for row in rows if row["lead_id"] not in inserted])
            for key, lead in raced.items():
                _same_lead(lead, wanted[key])
            found.update(raced)
        found.update({lead.key: lead for lead in new})
        if new:
            _insert_history(
                session,
                [
                    {"lead_id": lead.lead_id, "action": "created", "at": now, "from_status": None,
                     "to_status": "new", "by": actor, "note": None, "staff_id": lead.owner_staff_id,
                     "emitted_at": None}
                    for lead in new
                ],
            )  # fmt: skip
            audit.record(
                session, actor=actor, action="lead.create", subject_type="lead",
                subject_id=new[0].lead_id if len(new) == 1 else None,
                detail={"count": len(new), "leads": [lead.lead_id for lead in new]}, at=now,
            )  # fmt: skip
    events = [_lead_event(lead, "created", now, lead.owner_staff_id) for lead in new]
    return Created([found[r.key] for r in requests], new, events)


# -------------------------------------------------------------------------------------------- status


def _refusal(lead: Lead, status: str) -> str:
    if lead.status in CLOSED_STATUSES:
        when = lead.closed_at.strftime("%Y-%m-%d %H:%M UTC") if lead.closed_at else "before"
        return f"lead {lead.lead_id} is {lead.status} (closed {when}): a closed lead cannot change"
    if lead.status == status:
        return f"lead {lead.lead_id} is {status} already"
    return (
        f"lead {lead.lead_id}: {lead.status} → {status} is not allowed "
        "(a lead moves new → contacted → won or lost; new → won or lost directly)"
    )


def set_status(
    session: Session,
    lead_id: str,
    status: str,
    *,
    by: str,
    now: datetime,
    note: str | None = None,
    staff_id: str | None = None,
    source: str = "cli",
) -> Change:
    """Move a lead to ``status`` (contacted, won or lost); an illegal move is refused
    (:class:`TransitionRefused`, 409) and changes nothing, also when another transaction moved the lead
    first. ``by`` is who acted, for the history and the audit trail; ``staff_id`` the member of staff who
    did (the event's ``staff_id``; default the owner). A queue lead (no owner) worked by a staff member
    becomes theirs."""
    _aware("now", now)
    if status not in LEAD_STATUSES or status == "new":
        raise AppError(f"status: {status!r} is not a status a lead can move to; use contacted, won or lost")
    cleaned = clean_note(note)
    lead = session.get(Lead, lead_id, populate_existing=True)
    if lead is None:
        raise NotFound(f"no lead {lead_id}")
    before = lead.status
    if status not in TRANSITIONS[before]:
        raise TransitionRefused(_refusal(lead, status), details={"lead_id": lead_id, "status": before})
    values: dict[str, Any] = {"status": status, "updated_at": now}
    if status == "contacted":
        values["contacted_at"] = now
    else:
        values["closed_at"] = now
    if lead.owner_staff_id is None and staff_id is not None:
        values["owner_staff_id"] = staff_id
    result = session.execute(
        update(Lead).where(Lead.lead_id == lead_id, Lead.status == before).values(**values)
    )
    if _rowcount(result) != 1:
        session.refresh(lead)
        raise TransitionRefused(_refusal(lead, status), details={"lead_id": lead_id, "status": lead.status})
    session.refresh(lead)
    actor_staff = staff_id or lead.owner_staff_id
    session.add(
        LeadHistory(lead_id=lead_id, action=status, at=now, from_status=before, to_status=status, by=by,
                    note=cleaned, staff_id=actor_staff)
    )  # fmt: skip
    session.flush()
    audit.record(
        session, actor=by, action=f"lead.{status}", subject_type="lead", subject_id=lead_id,
        detail={"customer_id": lead.customer_id, "from": before, "to": status, "staff_id": actor_staff},
        reason=cleaned or "", source=source, at=now,
    )  # fmt: skip
    read = lead_read(lead)
    return Change(read, [_lead_event(read, status, now, actor_staff)])


# ------------------------------------------------------------------------------------------ escalate


def branch_managers(session: Session, org_ids: Iterable[str] | None = None) -> dict[str, str]:
    """For each org (default: every org), the branch manager a lead there escalates to: a staff member
    with role ``branch_manager`` at the org itself or its nearest ancestor (the lowest staff id where an
    org has several). Orgs with none above them are left out."""
    parent: dict[str, str | None] = {
        org_id: up for org_id, up in session.execute(select(Org.org_id, Org.parent_id))
    }
    at_org: dict[str, str] = {}
    stmt = select(Staff.org_id, Staff.staff_id).where(Staff.role == "branch_manager")
    for org_id, staff_id in session.execute(stmt.order_by(Staff.staff_id.desc())):
        at_org[org_id] = staff_id  # in descending order, so the lowest id wins

    def nearest(org_id: str) -> str | None:
        node: str | None = org_id
        seen: set[str] = set()
        while node is not None and node not in seen:
            if node in at_org:
                return at_org[node]
            seen.add(node)
            node = parent.get(node)
        return None

    found = {org_id: nearest(org_id) for org_id in (parent if org_ids is None else set(org_ids))}
    return {org_id: manager for org_id, manager in found.items() if manager is not None}


def escalate_overdue(session: Session, *, now: datetime, actor: str = "system:escalation") -> Escalation:
    """Hand every lead still new and past its due time, not escalated before, to its branch manager —
    once (a conditional UPDATE: two runs at once escalate each lead once). The owner is kept. Leads with
    no branch manager at their org or above are left for the next run and reported as ``unassigned``."""
    _aware("now", now)
    due = list(
        session.scalars(
            select(Lead)
            .where(Lead.status == "new", Lead.due_at <= now, Lead.escalated_at.is_(None))
            .order_by(Lead.due_at, Lead.lead_id)
            .execution_options(populate_existing=True)
        )
    )
    if not due:
        return Escalation([], [])
    managers = branch_managers(session, {lead.org_id for lead in due})
    groups: dict[str, list[str]] = {}
    unassigned: list[LeadRead] = []
    for lead in due:
        manager = managers.get(lead.org_id)
        if manager is None:
            unassigned.append(lead_read(lead))
        else:
            groups.setdefault(manager, []).append(lead.lead_id)
    done: set[str] = set()
    for manager, ids in sorted(groups.items()):
        for part in _chunks(ids):
            result = session.execute(
                update(_LEADS)
                .where(
                    _LEADS.c.lead_id.in_(part),
                    _LEADS.c.status == "new",
                    _LEADS.c.escalated_at.is_(None),
                )
                .values(escalated_at=now, escalated_to=manager, updated_at=now)
                .returning(_LEADS.c.lead_id)
            )
            done.update(row[0] for row in result)
    escalated = [
        replace(lead_read(lead), escalated_at=now, escalated_to=managers[lead.org_id], updated_at=now)
        for lead in due
        if lead.lead_id in done
    ]
    for lead in due:
        if lead.lead_id in done:
            session.expire(lead)  # changed by a Core UPDATE: reloaded when next used
    if escalated:
        _insert_history(
            session,
            [
                {"lead_id": lead.lead_id, "action": "escalated", "at": now, "from_status": "new",
                 "to_status": "new", "by": actor, "note": None, "staff_id": lead.escalated_to,
                 "emitted_at": None}
                for lead in escalated
            ],
        )  # fmt: skip
        audit.record(
            session, actor=actor, action="lead.escalate", subject_type="lead",
            subject_id=escalated[0].lead_id if len(escalated) == 1 else None,
            detail={"count": len(escalated),
                    "leads": {lead.lead_id: lead.escalated_to for lead in escalated}}, at=now,
        )  # fmt: skip
    events = [_lead_event(lead, "escalated", now, lead.escalated_to) for lead in escalated]
    return Escalation(escalated, unassigned, events)


# ------------------------------------------------------------------------------------------- reading


def history(session: Session, lead_id: str) -> list[HistoryRead]:
    rows = session.scalars(select(LeadHistory).where(LeadHistory.lead_id == lead_id).order_by(LeadHistory.id))
    return [
        HistoryRead(lead_id=h.lead_id, action=h.action, at=h.at, from_status=h.from_status,
                    to_status=h.to_status, by=h.by, note=h.note, staff_id=h.staff_id)
        for h in rows
    ]  # fmt: skip


# ------------------------------------------------------------------------------------------ emitting


def emit_events(settings: Settings, events: Sequence[Event], *, now: datetime | None = None) -> Emitted:
    """Put lead events in the event log (call after the commit that made them), then mark their history
    rows emitted. Safe to repeat: the log keeps one event per ``event_id``."""
    if not events:
        return Emitted(0, 0, 0)
    result = emit(settings, events)
    bad = {r.index for r in result.rejects}
    by_action: dict[str, list[str]] = {}
    for i, event in enumerate(events):
        if i not in bad:
            by_action.setdefault(str(event["type"]).removeprefix("lead."), []).append(str(event["lead_id"]))
    moment = now or datetime.now(UTC)
    table = _HISTORY
    with unit_of_work(settings) as session:
        for action, ids in sorted(by_action.items()):
            for part in _chunks(sorted(set(ids))):
                session.execute(
                    update(table)
                    .where(table.c.lead_id.in_(part), table.c.action == action, table.c.emitted_at.is_(None))
                    .values(emitted_at=moment)
                )
    return result


def pending_events(session: Session, *, limit: int = 10_000) -> list[Event]:
    """Events of lead changes not yet marked emitted (oldest first): what a crash may have left behind."""
    h, lead = LeadHistory, Lead
    stmt = (
        select(h.lead_id, h.action, h.at, h.staff_id, h.to_status, lead.customer_id, lead.product_id,
               lead.source, lead.journey, lead.step, lead.org_id)
        .join(lead, lead.lead_id == h.lead_id)
        .where(h.emitted_at.is_(None))
        .order_by(h.id)
        .limit(limit)
    )  # fmt: skip
    return [
        _event(action=r.action, lead_id=r.lead_id, customer_id=r.customer_id, at=r.at, staff_id=r.staff_id,
               product_id=r.product_id, source=r.source, journey=r.journey, step=r.step, org_id=r.org_id,
               status=r.to_status)
        for r in session.execute(stmt)
    ]  # fmt: skip


def emit_pending(settings: Settings, *, now: datetime | None = None, limit: int = 10_000) -> Emitted:
    """Emit the lead events a crash left unemitted (see :func:`pending_events`)."""
    with unit_of_work(settings) as session:
        events = pending_events(session, limit=limit)
    return emit_events(settings, events, now=now)
