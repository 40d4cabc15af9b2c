"""Tickets: opening one (routed to a queue, handed to the least-loaded agent on shift), moving it along its
status flow, answering it, and the SLA cache every change refreshes. Flushes only; the caller commits.

Status flow: ``new → assigned → in_progress → waiting_customer | waiting_supplier → resolved → closed``, with
``reopened`` from resolved or closed (:data:`TRANSITIONS`). An owner is a member of staff or a queue, exactly
one at a time; assigning a new or reopened ticket to a person makes it ``assigned``. Answers
(``responded``: to the customer; ``updated``: a progress note) are actions, not statuses; they stop the
first-response clock and start the next-update clock again.

Every change is a ``ticket_history`` row with its actor and becomes the event ``ticket.<action>`` (a status
change: ``ticket.<status>``, e.g. ``ticket.resolved``) with the deterministic id ``ticket:<id>:<seq>``,
emitted from that outbox after the commit (:func:`emit_pending`), so journeys and CX can react to it.

Two changes to one ticket at once: the second finds the ticket no longer as it read it (a conditional
UPDATE on the status and the owner) and is refused with a conflict, never applied on top.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, func, select, update
from sqlalchemy.orm import Session

from omnibank.benefits.models import Benefit, Coupon
from omnibank.config import Settings
from omnibank.contact import holds
from omnibank.customers.models import Customer
from omnibank.db import unit_of_work
from omnibank.errors import Conflict, InputRefused, NotFound
from omnibank.events.emit import Emitted, emit
from omnibank.kit.crypto import FieldCipher
from omnibank.kit.masking import mask_numbers
from omnibank.orgs.models import Org, Staff
from omnibank.service.calendar import BusinessCalendar, NoHolidayData, bank_calendar
from omnibank.service.models import (
    OPEN_STATUSES,
    TICKET_CHANNELS,
    TICKET_KINDS,
    TICKET_PRIORITIES,
    Ticket,
    TicketHistory,
)
from omnibank.service.routing import Routing, default_routing, load_routing, pick_agent
from omnibank.service.sla import LEVELS, Entry, SlaPolicy, TargetState, evaluate, load_policy

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("assigned", "in_progress", "waiting_customer", "waiting_supplier", "resolved", "closed"),
    "assigned": ("in_progress", "waiting_customer", "waiting_supplier", "resolved", "closed"),
    "in_progress": ("waiting_customer", "waiting_supplier", "resolved", "closed"),
    "waiting_customer": ("in_progress", "resolved", "closed"),
    "waiting_supplier": ("in_progress", "resolved", "closed"),
    "resolved": ("closed", "reopened"),
    "closed": ("reopened",),
    "reopened": ("assigned", "in_progress", "waiting_customer", "waiting_supplier", "resolved", "closed"),
}
ANSWERS = ("responded", "updated")
CATEGORY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
TICKET_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,40}$")
_CUSTOMER = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_STAFF = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
MAX_SUBJECT = 200
MAX_DESCRIPTION = 2000
_TICKETS: Table = Ticket.__table__  # type: ignore[assignment]

Event = dict[str, Any]


# ------------------------------------------------------------------------------------------- the desk


@dataclass(frozen=True)
class Desk:
    """What the desk runs on, read once per command or job: the SLA policy, the calendar, the routing."""

    policy: SlaPolicy
    calendar: BusinessCalendar
    routing: Routing


def desk_of(session: Session, settings: Settings) -> Desk:
    """The desk of the settings' files (the default routing reads the org tree and the service agents)."""
    if settings.routing_file is not None:
        routing = load_routing(settings.routing_file)
    else:
        root = session.scalar(select(Org.org_id).where(Org.parent_id.is_(None)).order_by(Org.org_id))
        agents = session.scalars(
            select(Staff.staff_id)
            .where(Staff.role == "service_agent", Staff.left_at.is_(None))
            .order_by(Staff.staff_id)
        )
        routing = default_routing(root, list(agents))
    return Desk(load_policy(settings.sla_file), bank_calendar(settings), routing)


# ------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class TicketRead:
    ticket_id: str
    kind: str
    category: str
    priority: str
    channel: str
    customer_id: str
    org_id: str | None
    benefit_id: str | None
    coupon_id: str | None
    supplier_id: str | None
    subject: str
    has_description: bool
    source: str
    queue: str
    status: str
    owner_staff_id: str | None
    owner_queue: str | None
    opened_at: datetime
    updated_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    sla_level: str | None
    sla_next_at: datetime | None
    sla_due_at: datetime | None
    sla_breached: bool
    sla_error: str | None
    supplier_notified_at: datetime | None
    supplier_due_at: datetime | None
    supplier_answered_at: datetime | None

    @property
    def owner(self) -> str:
        return self.owner_staff_id or f"queue:{self.owner_queue}"

    @property
    def open(self) -> bool:
        return self.status in OPEN_STATUSES


def ticket_read(t: Ticket) -> TicketRead:
    return TicketRead(
        ticket_id=t.ticket_id, kind=t.kind, category=t.category, priority=t.priority, channel=t.channel,
        customer_id=t.customer_id, org_id=t.org_id, benefit_id=t.benefit_id, coupon_id=t.coupon_id,
        supplier_id=t.supplier_id, subject=t.subject, has_description=t.description_enc is not None,
        source=t.source, queue=t.queue, status=t.status, owner_staff_id=t.owner_staff_id,
        owner_queue=t.owner_queue, opened_at=t.opened_at, updated_at=t.updated_at,
        first_response_at=t.first_response_at, resolved_at=t.resolved_at, closed_at=t.closed_at,
        sla_level=t.sla_level, sla_next_at=t.sla_next_at, sla_due_at=t.sla_due_at,
        sla_breached=bool(t.sla_breached), sla_error=t.sla_error, supplier_notified_at=t.supplier_notified_at,
        supplier_due_at=t.supplier_due_at, supplier_answered_at=t.supplier_answered_at,
    )  # fmt: skip


@dataclass(frozen=True)
class HistoryRead:
    seq: int
    action: str
    at: datetime
    from_status: str | None
    to_status: str
    by: str
    staff_id: str | None
    queue: str | None
    detail: str | None
    note: str | None


def history(session: Session, ticket_id: str) -> list[HistoryRead]:
    rows = session.scalars(
        select(TicketHistory).where(TicketHistory.ticket_id == ticket_id).order_by(TicketHistory.seq)
    )
    return [
        HistoryRead(seq=h.seq, action=h.action, at=h.at, from_status=h.from_status, to_status=h.to_status,
                    by=h.by, staff_id=h.staff_id, queue=h.queue, detail=h.detail, note=h.note)
        for h in rows
    ]  # fmt: skip


def clock_entries(rows: Iterable[tuple[str, datetime, str | None, str]]) -> list[Entry]:
    """The SLA history of a ticket from its history rows ``(action, at, from_status, to_status)``: its
    receipt, every status it entered and every answer."""
    entries = []
    for action, at, from_status, to_status in rows:
        if action == "opened":
            entries.append(Entry(at, "new"))
        elif action in ANSWERS:
            entries.append(Entry(at, action))
        elif to_status != from_status and from_status is not None:
            entries.append(Entry(at, to_status))
    return entries


def _entries(session: Session, ticket_id: str) -> list[Entry]:
    h = TicketHistory
    rows = session.execute(
        select(h.action, h.at, h.from_status, h.to_status).where(h.ticket_id == ticket_id).order_by(h.seq)
    )
    return clock_entries(rows.all())


def sla_of(
    desk: Desk, t: TicketRead | Ticket, entries: Sequence[Entry], *, as_of: datetime
) -> dict[str, TargetState]:
    targets = desk.policy.targets_for(t.kind, t.category, t.priority)
    return evaluate(entries, targets, desk.calendar, as_of=as_of)


def refresh_sla(session: Session, desk: Desk, ticket: Ticket, *, now: datetime) -> dict[str, TargetState]:
    """Recompute the ticket's clocks from its history and store what the worker needs (the cache)."""
    try:
        states = sla_of(desk, ticket, _entries(session, ticket.ticket_id), as_of=max(now, ticket.opened_at))
    except NoHolidayData as exc:  # looked at again every hour (and counted) until the year has data
        ticket.sla_error = exc.message[:300]
        ticket.sla_next_at = now + timedelta(hours=1) if ticket.status in OPEN_STATUSES else None
        return {}
    ticket.sla_error = None
    order = list(LEVELS)
    levels = [s.level for s in states.values() if s.level is not None]
    ticket.sla_level = max(levels, key=order.index) if levels else None
    pending = [s.next_level_at for s in states.values() if s.next_level_at is not None]
    ticket.sla_next_at = min(pending) if pending and ticket.status in OPEN_STATUSES else None
    resolution = states.get("resolution")
    ticket.sla_due_at = resolution.due_at if resolution is not None else None
    ticket.sla_breached = any(s.state == "breached" for s in states.values())
    return states


# ------------------------------------------------------------------------------------------- opening


@dataclass(frozen=True)
class TicketRequest:
    kind: str
    category: str
    customer_id: str
    channel: str
    subject: str
    priority: str = "normal"
    description: str | None = None
    benefit_id: str | None = None
    coupon_id: str | None = None
    key: str | None = None
    source: str = "cli"
    ticket_id: str | None = None  # imported tickets keep their id
    owner_staff_id: str | None = None  # owned by this member of staff from the start (no routing): CX alerts


def check_request(r: TicketRequest) -> None:
    """Refuse a request that breaks the ticket's rules, naming the field (never a value that may be
    personal)."""
    if r.kind not in TICKET_KINDS:
        raise InputRefused(f"kind: {r.kind!r} is not one of {', '.join(TICKET_KINDS)}")
    if not CATEGORY.match(r.category or ""):
        raise InputRefused(
            "category: lower-case letters, digits and _ (e.g. benefit, card, app, branch, wealth)"
        )
    if r.priority not in TICKET_PRIORITIES:
        raise InputRefused(f"priority: {r.priority!r} is not one of {', '.join(TICKET_PRIORITIES)}")
    if r.channel not in TICKET_CHANNELS:
        raise InputRefused(f"channel: {r.channel!r} is not one of {', '.join(TICKET_CHANNELS)}")
    if not _CUSTOMER.match(r.customer_id or ""):
        raise InputRefused("customer_id: 1 to 32 letters, digits, - or _")
    if not (r.subject or "").strip():
        raise InputRefused("subject: say in a few words what the ticket is about")
    if len(r.subject) > MAX_SUBJECT:
        raise InputRefused(f"subject: at most {MAX_SUBJECT} characters")
    if r.description is not None and len(r.description) > MAX_DESCRIPTION:
        raise InputRefused(f"description: at most {MAX_DESCRIPTION} characters")
    if r.ticket_id is not None and not TICKET_ID.match(r.ticket_id):
        raise InputRefused("ticket: 1 to 40 letters, digits, _ . : or -")


def ticket_id_for(key: str) -> str:
    digest = hashlib.sha256(key.encode()).digest()
    return "TK" + base64.b32encode(digest).decode()[:12]


def clean_note(note: str | None) -> str | None:
    if note is None or not note.strip():
        return None
    return mask_numbers(note.strip())[:500]


@dataclass(frozen=True)
class Opened:
    ticket: TicketRead
    created: bool  # False: the key had opened it before


def _benefit_of(session: Session, r: TicketRequest) -> tuple[str | None, str | None, str | None]:
    """(benefit, coupon, supplier) of a request about a benefit or a coupon."""
    benefit_id = r.benefit_id
    coupon_id = r.coupon_id
    if coupon_id is not None:
        coupon = session.get(Coupon, int(coupon_id)) if coupon_id.isdigit() else None
        if coupon is None or coupon.customer_id != r.customer_id:
            raise NotFound(f"coupon: no coupon {coupon_id} of this customer")
        if benefit_id is not None and benefit_id != coupon.benefit_id:
            raise InputRefused(f"benefit_id: the coupon is of benefit {coupon.benefit_id}, not {benefit_id}")
        benefit_id = coupon.benefit_id
    if benefit_id is None:
        return None, None, None
    benefit = session.get(Benefit, benefit_id)
    if benefit is None:
        raise NotFound(f"benefit_id: no benefit {benefit_id}")
    return benefit_id, coupon_id, benefit.supplier_id


def open_ticket(
    session: Session,
    desk: Desk,
    cipher: FieldCipher,
    request: TicketRequest,
    *,
    by: str,
    now: datetime,
) -> Opened:
    """Open a ticket (received at ``now``), routed to its queue and handed to the least-loaded agent on
    shift; the same key again returns the ticket it opened (the same request) or is refused (another)."""
    check_request(request)
    key = request.key or f"{request.source}:{uuid.uuid4().hex}"
    existing = session.scalar(select(Ticket).where(Ticket.key == key))
    if existing is not None:
        if (existing.kind, existing.category, existing.customer_id) != (
            request.kind,
            request.category,
            request.customer_id,
        ):
            raise Conflict(f"the key {key!r} opened ticket {existing.ticket_id}, which is another ticket")
        return Opened(ticket_read(existing), False)
    ticket_id = request.ticket_id or ticket_id_for(key)
    if session.get(Ticket, ticket_id) is not None:
        raise Conflict(f"ticket {ticket_id} exists already")
    if request.owner_staff_id is not None:
        owner = session.get(Staff, request.owner_staff_id) if _STAFF.match(request.owner_staff_id) else None
        if owner is None or owner.left_at is not None:
            raise NotFound(f"owner: no active member of staff {request.owner_staff_id}")
    benefit_id, coupon_id, supplier_id = _benefit_of(session, request)
    customer = session.get(Customer, request.customer_id)
    org_id = customer.branch_id if customer is not None else None
    path = session.scalar(select(Org.path).where(Org.org_id == org_id)) if org_id else None
    queue = desk.routing.route(request.kind, request.category, path)
    description = None
    if request.description and request.description.strip():
        description = cipher.encrypt(request.description.strip(), context=f"tickets.description:{ticket_id}")
    ticket = Ticket(
        ticket_id=ticket_id, key=key, kind=request.kind, category=request.category, priority=request.priority,
        channel=request.channel, customer_id=request.customer_id, org_id=org_id, benefit_id=benefit_id,
        coupon_id=coupon_id, supplier_id=supplier_id, subject=mask_numbers(request.subject.strip()),
        description_enc=description, source=request.source, queue=queue.id, status="new", owner_staff_id=None,
        owner_queue=queue.id, opened_at=now, updated_at=now, sla_breached=False, supplier_attempts=0,
    )  # fmt: skip
    session.add(ticket)
    session.flush()
    add_history(session, ticket, "opened", now, by=by, from_status=None, queue=queue.id)
    if request.owner_staff_id is not None:
        _set_owner(session, ticket, staff_id=request.owner_staff_id, queue=None, by=by, now=now)
    else:
        agent = _agent_for(session, desk, queue.id, now=now)
        if agent is not None:
            _set_owner(session, ticket, staff_id=agent, queue=None, by="system:routing", now=now)
    if ticket.kind == "complaint":
        hold_surveys(session, ticket.customer_id, ticket.ticket_id, now=now)
    refresh_sla(session, desk, ticket, now=now)
    session.flush()
    return Opened(ticket_read(ticket), True)


def hold_surveys(session: Session, customer_id: str, ticket_id: str, *, now: datetime) -> None:
    """No survey reaches a customer while a complaint of theirs is open (the contact policy's hold)."""
    holds.hold(
        session, customer_id, purpose="survey", ref=f"ticket:{ticket_id}", reason="open_complaint", now=now
    )


def lift_survey_hold(session: Session, ticket_id: str, *, now: datetime) -> None:
    holds.lift(session, ref=f"ticket:{ticket_id}", now=now)


def _agent_for(session: Session, desk: Desk, queue_id: str, *, now: datetime) -> str | None:
    queue = desk.routing.queue(queue_id)
    if queue is None or not queue.agents:
        return None
    ids = [a.staff for a in queue.agents]
    active = set(
        session.scalars(select(Staff.staff_id).where(Staff.staff_id.in_(ids), Staff.left_at.is_(None)))
    )
    loads = {
        str(staff): int(n)
        for staff, n in session.execute(
            select(Ticket.owner_staff_id, func.count())
            .where(Ticket.owner_staff_id.in_(ids), Ticket.status.in_(OPEN_STATUSES))
            .group_by(Ticket.owner_staff_id)
        )
    }
    return pick_agent(queue, active=active, loads=loads, calendar=desk.calendar, now=now)


# ------------------------------------------------------------------------------------------- changes


def _next_seq(session: Session, ticket_id: str) -> int:
    current = session.scalar(select(func.max(TicketHistory.seq)).where(TicketHistory.ticket_id == ticket_id))
    return int(current or 0) + 1


def add_history(
    session: Session,
    ticket: Ticket,
    action: str,
    at: datetime,
    *,
    by: str,
    from_status: str | None,
    staff_id: str | None = None,
    queue: str | None = None,
    detail: str | None = None,
    note: str | None = None,
) -> TicketHistory:
    row = TicketHistory(
        ticket_id=ticket.ticket_id, seq=_next_seq(session, ticket.ticket_id), action=action, at=at,
        from_status=from_status, to_status=ticket.status, by=by[:128], staff_id=staff_id, queue=queue,
        detail=detail, note=clean_note(note), emitted_at=None,
    )  # fmt: skip
    session.add(row)
    session.flush()
    return row


def _guarded(session: Session, ticket: Ticket, **values: Any) -> None:
    """Update the ticket only if it is still as read (status and owner): else someone changed it."""
    result = session.execute(
        update(_TICKETS)
        .where(
            _TICKETS.c.ticket_id == ticket.ticket_id,
            _TICKETS.c.status == ticket.status,
            _TICKETS.c.owner_staff_id.is_(None) if ticket.owner_staff_id is None
            else _TICKETS.c.owner_staff_id == ticket.owner_staff_id,
        )
        .values(**values)
    )  # fmt: skip
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"ticket {ticket.ticket_id} was changed meanwhile; read it again and retry")
    session.refresh(ticket)


def _set_owner(
    session: Session, ticket: Ticket, *, staff_id: str | None, queue: str | None, by: str, now: datetime,
    note: str | None = None,
) -> None:  # fmt: skip
    before = ticket.status
    status = "assigned" if staff_id is not None and before in ("new", "reopened") else before
    _guarded(session, ticket, owner_staff_id=staff_id, owner_queue=queue, status=status, updated_at=now)
    add_history(session, ticket, "assigned", now, by=by, from_status=before, staff_id=staff_id, queue=queue,
                 note=note)  # fmt: skip


def _ticket(session: Session, ticket_id: str) -> Ticket:
    ticket = session.get(Ticket, ticket_id, populate_existing=True)
    if ticket is None:
        raise NotFound(f"no ticket {ticket_id}")
    return ticket


def assign(
    session: Session, desk: Desk, ticket_id: str, *, staff_id: str | None = None, queue: str | None = None,
    by: str, now: datetime, note: str | None = None,
) -> TicketRead:  # fmt: skip
    """Give the ticket to a member of staff or a queue (exactly one)."""
    if (staff_id is None) == (queue is None):
        raise InputRefused("assign to a member of staff or to a queue (one of them)")
    ticket = _ticket(session, ticket_id)
    if ticket.status == "closed":
        raise Conflict(f"ticket {ticket_id} is closed; reopen it first")
    if staff_id is not None:
        staff = session.get(Staff, staff_id) if _STAFF.match(staff_id) else None
        if staff is None or staff.left_at is not None:
            raise NotFound(f"no active member of staff {staff_id}")
    if queue is not None and desk.routing.queue(queue) is None:
        raise NotFound(f"no queue {queue} (queues: {', '.join(q.id for q in desk.routing.queues)})")
    if (ticket.owner_staff_id, ticket.owner_queue) == (staff_id, queue):
        return ticket_read(ticket)
    _set_owner(session, ticket, staff_id=staff_id, queue=queue, by=by, now=now, note=note)
    if queue is not None:
        ticket.queue = queue
    refresh_sla(session, desk, ticket, now=now)
    session.flush()
    return ticket_read(ticket)


def set_status(
    session: Session,
    desk: Desk,
    ticket_id: str,
    status: str,
    *,
    by: str,
    now: datetime,
    note: str | None = None,
) -> TicketRead:
    """Move the ticket along its flow (:data:`TRANSITIONS`); a move the flow has not: 409."""
    ticket = _ticket(session, ticket_id)
    before = ticket.status
    if status not in TRANSITIONS:
        raise InputRefused(f"status: {status!r} is not one of {', '.join(TRANSITIONS)}")
    if status == before:
        return ticket_read(ticket)
    if status not in TRANSITIONS[before]:
        allowed = ", ".join(TRANSITIONS[before]) or "none"
        raise Conflict(f"ticket {ticket_id} is {before}: it may move to {allowed}, not {status}")
    if status == "assigned" and ticket.owner_staff_id is None:
        raise Conflict(f"ticket {ticket_id} is owned by a queue: assign it to someone instead")
    settles = status == "resolved" or (status == "closed" and before != "resolved")
    if ticket.kind == "alert" and settles and clean_note(note) is None:
        raise InputRefused(
            f"note: ticket {ticket_id} is an alert; say what was done about it (the action taken)"
        )
    values: dict[str, Any] = {"status": status, "updated_at": now}
    if status == "resolved":
        values["resolved_at"] = now
    elif status == "closed":
        values["closed_at"] = now
        values["resolved_at"] = ticket.resolved_at or now
    elif status == "reopened":
        values["resolved_at"] = None
        values["closed_at"] = None
    _guarded(session, ticket, **values)
    add_history(session, ticket, "status", now, by=by, from_status=before, note=note)
    if ticket.kind == "complaint" and status in ("resolved", "closed", "reopened"):
        if status == "reopened":
            hold_surveys(session, ticket.customer_id, ticket.ticket_id, now=now)
        else:
            lift_survey_hold(session, ticket.ticket_id, now=now)
    refresh_sla(session, desk, ticket, now=now)
    session.flush()
    return ticket_read(ticket)


def answer(
    session: Session,
    desk: Desk,
    ticket_id: str,
    action: str,
    *,
    by: str,
    now: datetime,
    note: str | None = None,
) -> TicketRead:
    """Record an answer to the customer (``responded``) or a progress note (``updated``) on an open
    ticket; a new or reopened ticket a person answers is in progress from then on."""
    if action not in ANSWERS:
        raise InputRefused(f"action: {action!r} is not one of {', '.join(ANSWERS)}")
    ticket = _ticket(session, ticket_id)
    if ticket.status not in OPEN_STATUSES:
        raise Conflict(f"ticket {ticket_id} is {ticket.status}: reopen it to answer")
    values: dict[str, Any] = {"updated_at": now}
    if action == "responded" and ticket.first_response_at is None:
        values["first_response_at"] = now
    _guarded(session, ticket, **values)
    add_history(session, ticket, action, now, by=by, from_status=ticket.status, note=note)
    refresh_sla(session, desk, ticket, now=now)
    session.flush()
    return ticket_read(ticket)


def assign_waiting(session: Session, desk: Desk, *, now: datetime, limit: int = 500) -> list[TicketRead]:
    """Hand queue-owned new or reopened tickets to the least-loaded agent on shift now (oldest first)."""
    waiting = list(
        session.scalars(
            select(Ticket)
            .where(Ticket.owner_queue.is_not(None), Ticket.status.in_(("new", "reopened")))
            .order_by(Ticket.opened_at, Ticket.ticket_id)
            .limit(limit)
        )
    )
    done = []
    for ticket in waiting:
        agent = _agent_for(session, desk, ticket.owner_queue or ticket.queue, now=now)
        if agent is None:
            continue
        _set_owner(session, ticket, staff_id=agent, queue=None, by="system:routing", now=now)
        refresh_sla(session, desk, ticket, now=now)
        done.append(ticket_read(ticket))
    session.flush()
    return done


# ------------------------------------------------------------------------------------------ emitting


def _type_of(action: str, to_status: str) -> str:
    return f"ticket.{to_status}" if action == "status" else f"ticket.{action}"


def pending_events(session: Session, *, limit: int = 10_000) -> tuple[list[Event], list[int]]:
    """Events of ticket changes not yet in the event log (oldest first) and their history row ids."""
    h, t = TicketHistory, Ticket
    stmt = (
        select(h.id, h.ticket_id, h.seq, h.action, h.at, h.to_status, h.staff_id, h.queue, h.detail, h.by,
               t.customer_id, t.kind, t.category, t.priority, t.channel, t.supplier_id, t.benefit_id)
        .join(t, t.ticket_id == h.ticket_id)
        .where(h.emitted_at.is_(None))
        .order_by(h.id)
        .limit(limit)
    )  # fmt: skip
    events: list[Event] = []
    ids: list[int] = []
    for r in session.execute(stmt):
        event: Event = {
            "event_id": f"ticket:{r.ticket_id}:{r.seq}", "type": _type_of(r.action, r.to_status),
            "customer_id": r.customer_id, "ts": r.at.astimezone(UTC).isoformat(), "ticket_id": r.ticket_id,
            "kind": r.kind, "category": r.category, "priority": r.priority, "status": r.to_status,
            "via": r.channel, "actor": r.by,
        }  # fmt: skip
        for name in ("staff_id", "queue", "detail", "supplier_id", "benefit_id"):
            value = getattr(r, name)
            if value is not None:
                event[name] = value
        events.append(event)
        ids.append(r.id)
    return events, ids


def emit_pending(settings: Settings, *, now: datetime | None = None, limit: int = 10_000) -> Emitted:
    """Put the ticket events not yet in the log there (call after the commit that made them), then mark
    them emitted. Safe to repeat and to run in two processes: the log keeps one event per id."""
    with unit_of_work(settings) as session:
        events, ids = pending_events(session, limit=limit)
    if not events:
        return Emitted(0, 0, 0)
    result = emit(settings, events)
    done = ids  # a rejected event (none is expected: the platform writes them) would be refused again
    moment = now or datetime.now(UTC)
    with unit_of_work(settings) as session:
        for start in range(0, len(done), 500):
            session.execute(
                update(TicketHistory)
                .where(TicketHistory.id.in_(done[start : start + 500]))
                .values(emitted_at=moment)
            )
    return result
