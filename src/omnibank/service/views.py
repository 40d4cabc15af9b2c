"""Reading tickets, once for the CLI, the API and the console: a page of the tickets a viewer sees (customers'
names and phones masked, audited), one ticket with its history and its clocks, the complaint's own words
(a reveal: audited, for those who may read personal data), the SLA report, the desk's figures.

**Who sees what.** A viewer is a scope of customers (the API's rule: a manager their org subtree, an RM
their own customers and their unit's unassigned ones, the whole bank for HQ) and/or a member of staff, who
sees what they work on: the tickets they own, those escalated to them, and those owned by the queues they
are agents of. Out of sight looks like not there (404).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import ColumnElement, Select, and_, case, false, func, or_, select
from sqlalchemy.orm import Session

from omnibank.audit import service as audit
from omnibank.customers.repository import Scope, customer_in_scope
from omnibank.errors import NotFound
from omnibank.kit.crypto import FieldCipher
from omnibank.leads.repository import Masked, masked_customers
from omnibank.leads.repository import Viewer as Viewer  # who is looking: a scope, a member of staff, or both
from omnibank.service.calendar import NoHolidayData, from_utc_micros, utc_micros
from omnibank.service.models import OPEN_STATUSES, TICKET_STATUSES, Ticket, TicketEscalation, TicketHistory
from omnibank.service.sla import TargetState
from omnibank.service.slafast import CODE_OF, ClockBatch, evaluate_batches
from omnibank.service.tickets import (
    Desk,
    HistoryRead,
    TicketRead,
    clock_entries,
    history,
    sla_of,
    ticket_read,
)

MASKED_FIELDS = ["name", "phone"]


def _in_scope(scope: Scope) -> ColumnElement[bool]:
    return customer_in_scope(Ticket.customer_id, scope)


def _staff_view(desk: Desk, staff_id: str) -> ColumnElement[bool]:
    queues = [q.id for q in desk.routing.queues if any(a.staff == staff_id for a in q.agents)]
    escalated = select(TicketEscalation.ticket_id).where(TicketEscalation.to_staff_id == staff_id)
    return or_(
        Ticket.owner_staff_id == staff_id,
        Ticket.ticket_id.in_(escalated),
        Ticket.owner_queue.in_(queues) if queues else false(),
    )


def visibility(desk: Desk, viewer: Viewer) -> list[ColumnElement[bool]]:
    found = []
    if viewer.scope is not None:
        found.append(_in_scope(viewer.scope))
    if viewer.staff_id is not None:
        found.append(_staff_view(desk, viewer.staff_id))
    return found


S = TypeVar("S", bound=Select[Any])


def _visible(desk: Desk, stmt: S, viewer: Viewer) -> S:
    return stmt.where(*visibility(desk, viewer))


def get(session: Session, desk: Desk, viewer: Viewer, ticket_id: str) -> TicketRead:
    stmt = _visible(desk, select(Ticket).where(Ticket.ticket_id == ticket_id), viewer)
    ticket = session.scalar(stmt.execution_options(populate_existing=True))
    if ticket is None:
        raise NotFound(f"no ticket {ticket_id}")
    return ticket_read(ticket)


@dataclass(frozen=True)
class TicketItem:
    ticket: TicketRead
    name: str
    phone: str


@dataclass(frozen=True)
class TicketPage:
    items: list[TicketItem]
    next_after: str | None


def ticket_page(
    session: Session,
    cipher: FieldCipher,
    desk: Desk,
    viewer: Viewer,
    *,
    now: datetime,
    actor: str,
    source: str = "cli",
    status: str | None = None,
    open_only: bool = False,
    kind: str | None = None,
    queue: str | None = None,
    owner: str | None = None,
    breached: bool | None = None,
    customer_id: str | None = None,
    after: str | None = None,
    limit: int = 50,
) -> TicketPage:
    """The viewer's tickets, the most urgent first (the soonest next level, then the oldest), names and
    phones masked; audited (``ticket.list``, the customers shown). ``owner``: a staff id or ``queue:<id>``."""
    stmt = _visible(desk, select(Ticket), viewer)
    if status is not None:
        stmt = stmt.where(Ticket.status == status)
    if open_only:
        stmt = stmt.where(Ticket.status.in_(OPEN_STATUSES))
    if kind is not None:
        stmt = stmt.where(Ticket.kind == kind)
    if queue is not None:
        stmt = stmt.where(Ticket.queue == queue)
    if owner is not None:
        stmt = stmt.where(
            Ticket.owner_queue == owner.removeprefix("queue:") if owner.startswith("queue:")
            else Ticket.owner_staff_id == owner
        )  # fmt: skip
    if breached is not None:
        stmt = stmt.where(Ticket.sla_breached.is_(breached))
    if customer_id is not None:
        stmt = stmt.where(Ticket.customer_id == customer_id)
    if after is not None:
        stmt = stmt.where(Ticket.ticket_id > after)
    rows = [ticket_read(t) for t in session.scalars(stmt.order_by(Ticket.ticket_id).limit(limit))]
    shown = sorted({t.customer_id for t in rows})
    masked = masked_customers(session, cipher, shown)
    audit.record(
        session, actor=actor, action="ticket.list", subject_type="ticket", subject_id=None,
        detail={"shown": shown, "fields": MASKED_FIELDS}, source=source, at=now,
    )  # fmt: skip
    items = [TicketItem(t, *_masked(masked, t.customer_id)) for t in rows]
    return TicketPage(items, rows[-1].ticket_id if len(rows) == limit else None)


def _masked(masked: dict[str, Masked], customer_id: str) -> tuple[str, str]:
    m = masked.get(customer_id)
    return (m.name, m.phone) if m is not None else ("(not loaded)", "")


@dataclass(frozen=True)
class TicketDetail:
    item: TicketItem
    history: list[HistoryRead]
    sla: dict[str, TargetState]
    sla_error: str | None


def ticket_detail(
    session: Session,
    cipher: FieldCipher,
    desk: Desk,
    viewer: Viewer,
    ticket_id: str,
    *,
    now: datetime,
    actor: str,
    source: str = "cli",
    record: bool = True,
) -> TicketDetail:
    """One ticket the viewer sees with its history and its clocks now (else NotFound); audited
    (``ticket.view``) unless ``record`` is false (the answer to a change, audited as the change)."""
    ticket = get(session, desk, viewer, ticket_id)
    rows = history(session, ticket_id)
    entries = clock_entries((h.action, h.at, h.from_status, h.to_status) for h in rows)
    try:
        states, error = sla_of(desk, ticket, entries, as_of=max(now, ticket.opened_at)), None
    except NoHolidayData as exc:
        states, error = {}, exc.message
    masked = masked_customers(session, cipher, [ticket.customer_id])
    if record:
        audit.record(
            session, actor=actor, action="ticket.view", subject_type="ticket", subject_id=ticket_id,
            detail={"customer_id": ticket.customer_id, "fields": MASKED_FIELDS}, source=source, at=now,
        )  # fmt: skip
    return TicketDetail(TicketItem(ticket, *_masked(masked, ticket.customer_id)), rows, states, error)


def reveal_description(
    session: Session, cipher: FieldCipher, desk: Desk, viewer: Viewer, ticket_id: str, *, actor: str,
    source: str, reason: str, now: datetime,
) -> str | None:  # fmt: skip
    """The complaint's own words (they may name people): for those who may read personal data, with a
    reason, audited (``ticket.reveal``)."""
    ticket = get(session, desk, viewer, ticket_id)
    blob = session.scalar(select(Ticket.description_enc).where(Ticket.ticket_id == ticket.ticket_id))
    audit.record(
        session, actor=actor, action="ticket.reveal", subject_type="ticket", subject_id=ticket_id,
        detail={"customer_id": ticket.customer_id, "fields": ["description"], "reason": reason[:200]},
        source=source, at=now,
    )  # fmt: skip
    if blob is None:
        return None
    return cipher.decrypt(blob, context=f"tickets.description:{ticket_id}")


# ------------------------------------------------------------------------------------------ the SLA report


@dataclass(frozen=True)
class SlaRow:
    ticket_id: str
    kind: str
    category: str
    priority: str
    status: str
    owner: str
    target: str
    spec: str
    clock: str
    due_at: datetime | None
    used_minutes: int | None
    paused_minutes: int | None
    percent_used: str
    state: str  # met, running, breached, or error
    breached: bool
    level: str | None
    error: str | None = None


@dataclass(frozen=True)
class _Meta:
    ticket_id: str
    kind: str
    category: str
    priority: str
    status: str
    owner: str


def _code(action: str, from_status: str | None, to_status: str) -> int | None:
    """A history row's clock code (:data:`omnibank.service.slafast.CODE_OF`), as :func:`clock_entries`
    reads it: the receipt, every status entered, every answer; None for a row that moves no clock."""
    if action == "opened":
        return CODE_OF["new"]
    if action in ("responded", "updated"):
        return CODE_OF[action]
    if from_status is not None and to_status != from_status:
        return CODE_OF[to_status]
    return None


def clock_batches(
    session: Session, desk: Desk, viewer: Viewer, *, open_only: bool = False, batch: int = 50_000
) -> Iterator[tuple[list[_Meta], ClockBatch]]:
    """The tickets the viewer sees with their clock histories, ``batch`` tickets at a time, in ticket order:
    plain columns read with two queries a batch (no ORM objects), for the batch engine."""
    last = ""
    h = TicketHistory
    while True:
        stmt = select(Ticket.ticket_id, Ticket.kind, Ticket.category, Ticket.priority, Ticket.status,
                      Ticket.owner_staff_id, Ticket.owner_queue).where(*visibility(desk, viewer))  # fmt: skip
        if open_only:
            stmt = stmt.where(Ticket.status.in_(OPEN_STATUSES))
        rows = session.execute(
            stmt.where(Ticket.ticket_id > last).order_by(Ticket.ticket_id).limit(batch)
        ).all()
        if not rows:
            return
        metas = [_Meta(r[0], r[1], r[2], r[3], r[4], r[5] or f"queue:{r[6]}") for r in rows]
        index = {m.ticket_id: i for i, m in enumerate(metas)}
        counts = [0] * len(metas)
        stamps: list[int] = []
        codes: list[int] = []
        for tid, action, at, before, after in session.execute(
            select(h.ticket_id, h.action, h.at, h.from_status, h.to_status)
            .where(h.ticket_id >= metas[0].ticket_id, h.ticket_id <= metas[-1].ticket_id)
            .order_by(h.ticket_id, h.seq)
        ):
            i = index.get(tid)
            code = _code(action, before, after) if i is not None else None
            if i is None or code is None:
                continue
            counts[i] += 1
            stamps.append(utc_micros(at))
            codes.append(code)
        offsets = np.zeros(len(metas) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        yield metas, ClockBatch(
            ticket_ids=[m.ticket_id for m in metas], kinds=[m.kind for m in metas],
            categories=[m.category for m in metas], priorities=[m.priority for m in metas], offsets=offsets,
            at_us=np.array(stamps, dtype=np.int64), codes=np.array(codes, dtype=np.int8),
        )  # fmt: skip
        session.expunge_all()
        last = metas[-1].ticket_id


def sla_report(
    session: Session, desk: Desk, viewer: Viewer, *, as_of: datetime, open_only: bool = False,
    processes: int = 1, on_batch: Callable[[int], None] | None = None,
) -> Iterator[SlaRow]:  # fmt: skip
    """Per ticket and target: the due time, the minutes used and paused, breached or not, at ``as_of``
    (tickets opened after it are left out), recomputed from the history with the desk's calendar and policy
    by the batch engine (:mod:`omnibank.service.slafast`, the same clocks as :func:`sla.evaluate`).
    ``processes`` > 1 spreads batches over worker processes; ``on_batch`` hears each batch's size."""
    metas_of: deque[list[_Meta]] = deque()

    def batches() -> Iterator[ClockBatch]:
        for metas, batch in clock_batches(session, desk, viewer, open_only=open_only):
            metas_of.append(metas)
            yield batch

    tz = desk.calendar.tz
    for lines in evaluate_batches(batches(), policy=desk.policy, calendar=desk.calendar, as_of=as_of,
                                  processes=processes):  # fmt: skip
        metas = metas_of.popleft()
        for ln in lines:
            m = metas[ln.ticket_index]
            due = None if ln.due_us is None else from_utc_micros(ln.due_us).astimezone(tz)
            yield SlaRow(
                ticket_id=m.ticket_id, kind=m.kind, category=m.category, priority=m.priority, status=m.status,
                owner=m.owner, target=ln.target, spec=ln.spec, clock=ln.clock, due_at=due,
                used_minutes=ln.used_minutes, paused_minutes=ln.paused_minutes, percent_used=ln.percent_used,
                state=ln.state, breached=ln.state == "breached", level=ln.level, error=ln.error,
            )  # fmt: skip
        if on_batch is not None:
            on_batch(len(metas))


def ticket_count(session: Session, desk: Desk, viewer: Viewer, *, open_only: bool = False) -> int:
    stmt = select(func.count()).select_from(Ticket).where(*visibility(desk, viewer))
    if open_only:
        stmt = stmt.where(Ticket.status.in_(OPEN_STATUSES))
    return int(session.scalar(stmt) or 0)


# ------------------------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class DeskCounts:
    open: int
    unassigned: int  # owned by a queue
    breached_open: int
    by_status: dict[str, int]


def desk_counts(session: Session, desk: Desk, viewer: Viewer) -> DeskCounts:
    """Open tickets, those a queue still owns, open ones past a target, and tickets by status: nothing
    personal, one query."""
    is_open = Ticket.status.in_(OPEN_STATUSES)
    stmt = (
        select(
            Ticket.status,
            func.count(),
            func.count(case((and_(is_open, Ticket.owner_queue.is_not(None)), 1))),
            func.count(case((and_(is_open, Ticket.sla_breached.is_(True)), 1))),
        )
        .where(*visibility(desk, viewer))
        .group_by(Ticket.status)
    )
    by_status = {s: 0 for s in TICKET_STATUSES}
    unassigned = breached = 0
    for status, n, queued, late in session.execute(stmt).all():
        by_status[status] = int(n)
        unassigned += int(queued)
        breached += int(late)
    return DeskCounts(sum(by_status[s] for s in OPEN_STATUSES), unassigned, breached, by_status)
