"""/tickets: the service desk's tickets of the customers the caller sees (the org-subtree rule), one ticket
with its history and its SLA clocks, opening one, answering it, moving it, assigning it. Names and phones
masked; views and changes audited; writes take ``tickets:write`` and an ``Idempotency-Key`` replays the
first answer. The ticket events go to the event log after the commit."""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from omnibank.api.auth import Principal, audit_source, now_of, require, settings_of
from omnibank.api.errors import ERROR_RESPONSES
from omnibank.api.idempotency import run_write
from omnibank.audit import service as audit
from omnibank.db import unit_of_work
from omnibank.errors import AppError, InputRefused, NotFound
from omnibank.security import get_cipher
from omnibank.service import tickets, views
from omnibank.service.views import TicketDetail, TicketItem, Viewer

router = APIRouter(prefix="/tickets", tags=["tickets"], responses=ERROR_RESPONSES)
log = logging.getLogger("omnibank.service")
Reader = Annotated[Principal, Depends(require("customers:read"))]
Writer = Annotated[Principal, Depends(require("tickets:write"))]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
TicketId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,40}$")]
Kind = Literal["complaint", "inquiry", "request"]
Status = Literal[
    "new", "assigned", "in_progress", "waiting_customer", "waiting_supplier", "resolved", "closed", "reopened"
]


class TicketOut(BaseModel):
    ticket_id: str
    kind: str
    category: str
    priority: str
    channel: str
    customer_id: str
    name: str = Field(description="The customer's name, masked.")
    phone: str = Field(description="The customer's phone, masked.")
    benefit_id: str | None
    coupon_id: str | None
    supplier_id: str | None
    subject: str
    status: str
    owner_staff_id: str | None
    owner_queue: str | None
    queue: str
    opened_at: datetime
    updated_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    sla_due_at: datetime | None = Field(description="The resolution target's due time.")
    sla_level: str | None = Field(description="warn, breach or breach2: the highest level reached.")
    sla_breached: bool


class TicketList(BaseModel):
    items: list[TicketOut]
    next_after: str | None


class ClockOut(BaseModel):
    target: str
    spec: str
    clock: str
    due_at: datetime
    used_minutes: int
    paused_minutes: int
    percent_used: Decimal
    state: str
    paused: bool
    level: str | None


class HistoryOut(BaseModel):
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


class TicketView(TicketOut):
    clocks: list[ClockOut]
    sla_error: str | None
    history: list[HistoryOut]


class TicketCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    kind: Kind = "complaint"
    category: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$", examples=["benefit"])
    priority: Literal["low", "normal", "high", "urgent"] = "normal"
    channel: str = Field(default="app", examples=["app", "phone_hotline", "regulator"])
    subject: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000, description="Stored encrypted.")
    benefit_id: str | None = Field(default=None, max_length=64)
    coupon_id: str | None = Field(default=None, max_length=20)


class TicketChange(BaseModel):
    """One change: a status move, an answer, or an assignment (exactly one of them)."""

    model_config = ConfigDict(extra="forbid")

    status: Status | None = None
    answer: Literal["responded", "updated"] | None = None
    assign_staff: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,32}$")
    assign_queue: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    note: str | None = Field(default=None, max_length=500, description="Digit runs are masked.")


def _out(item: TicketItem) -> TicketOut:
    t = item.ticket
    return TicketOut(
        ticket_id=t.ticket_id,
        kind=t.kind,
        category=t.category,
        priority=t.priority,
        channel=t.channel,
        customer_id=t.customer_id,
        name=item.name,
        phone=item.phone,
        benefit_id=t.benefit_id,
        coupon_id=t.coupon_id,
        supplier_id=t.supplier_id,
        subject=t.subject,
        status=t.status,
        owner_staff_id=t.owner_staff_id,
        owner_queue=t.owner_queue,
        queue=t.queue,
        opened_at=t.opened_at,
        updated_at=t.updated_at,
        first_response_at=t.first_response_at,
        resolved_at=t.resolved_at,
        sla_due_at=t.sla_due_at,
        sla_level=t.sla_level,
        sla_breached=t.sla_breached,
    )


def _view(d: TicketDetail) -> TicketView:
    clocks = [
        ClockOut(
            target=s.target,
            spec=s.spec,
            clock=s.clock,
            due_at=s.due_at,
            used_minutes=s.used_minutes,
            paused_minutes=s.paused_minutes,
            percent_used=s.percent_used,
            state=s.state,
            paused=s.paused,
            level=s.level,
        )
        for s in d.sla.values()
    ]
    history = [
        HistoryOut(
            seq=h.seq,
            action=h.action,
            at=h.at,
            from_status=h.from_status,
            to_status=h.to_status,
            by=h.by,
            staff_id=h.staff_id,
            queue=h.queue,
            detail=h.detail,
            note=h.note,
        )
        for h in d.history
    ]
    return TicketView(**_out(d.item).model_dump(), clocks=clocks, sla_error=d.sla_error, history=history)


def _emit(request: Request) -> None:
    try:
        tickets.emit_pending(settings_of(request), now=now_of(request))
    except (AppError, OSError):  # committed: the events stay pending for the worker
        log.exception("ticket events not emitted yet")


@router.get("", response_model=TicketList)
def list_tickets(
    request: Request,
    principal: Reader,
    status: Annotated[Status | None, Query()] = None,
    open_only: Annotated[bool, Query(alias="open", description="Open tickets only.")] = False,
    kind: Annotated[Kind | None, Query()] = None,
    breached: Annotated[bool | None, Query()] = None,
    mine: Annotated[
        bool, Query(description="Only what I work on (mine, my queues', escalated to me).")
    ] = False,
    after: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.:-]{1,40}$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> TicketList:
    """The tickets of the customers the caller sees, by id. Names and phones masked; audited."""
    settings = settings_of(request)
    with unit_of_work(settings) as session:
        desk = tickets.desk_of(session, settings)
        staff = _staff(session, principal) if mine else None
        page = views.ticket_page(
            session,
            get_cipher(settings),
            desk,
            Viewer(scope=principal.customer_scope(session), staff_id=staff),
            now=now_of(request),
            actor=principal.actor,
            source=audit_source(request),
            status=status,
            open_only=open_only,
            kind=kind,
            breached=breached,
            after=after,
            limit=limit,
        )
    return TicketList(items=[_out(i) for i in page.items], next_after=page.next_after)


def _staff(session: Session, principal: Principal) -> str:
    from omnibank.leads.views import staff_of

    staff = staff_of(session, principal.actor, principal.kind)
    return staff or "(none)"


class SupplierAnswerOut(BaseModel):
    ticket_id: str
    supplier_answered_at: datetime | None


@router.post("/supplier-answer", response_model=SupplierAnswerOut)
async def supplier_answer(
    request: Request, signature: Annotated[str | None, Header(alias="X-Omnibank-Signature")] = None
) -> SupplierAnswerOut:
    """A supplier's answer to a ticket sent to it: ``{"ticket_id": …, "note": …}`` signed with the suppliers'
    shared secret (the ``X-Omnibank-Signature`` header, as the desk signs what it sends). No bearer token: the
    signature is the credential; a bad one is 401, a ticket not about that supplier's benefit 404."""
    from omnibank.service import suppliers

    settings = settings_of(request)
    raw = await request.body()
    now = now_of(request)

    def write() -> tickets.TicketRead:
        with unit_of_work(settings) as session:
            doc = suppliers.verify_callback(settings, raw, signature or "", session=session)
            desk = tickets.desk_of(session, settings)
            return suppliers.record_answer(
                session, desk, doc["ticket_id"], by="supplier:callback", now=now, note=doc.get("note")
            )

    t = await run_in_threadpool(write)  # the store is blocking: off the event loop
    _emit(request)
    return SupplierAnswerOut(ticket_id=t.ticket_id, supplier_answered_at=t.supplier_answered_at)


@router.get("/{ticket_id}", response_model=TicketView)
def get_ticket(ticket_id: TicketId, request: Request, principal: Reader) -> TicketView:
    """One ticket the caller sees, with its SLA clocks now and its history (out of scope: 404)."""
    settings = settings_of(request)
    with unit_of_work(settings) as session:
        desk = tickets.desk_of(session, settings)
        d = views.ticket_detail(
            session,
            get_cipher(settings),
            desk,
            Viewer(scope=principal.customer_scope(session)),
            ticket_id,
            now=now_of(request),
            actor=principal.actor,
            source=audit_source(request),
        )
    return _view(d)


@router.post("", response_model=TicketView, status_code=201)
def open_ticket(
    body: TicketCreate, request: Request, principal: Writer, idempotency_key: IdemKey = None
) -> JSONResponse:
    """Open a ticket for a customer the caller sees: routed to its queue, given to the least-loaded agent on
    shift. With an Idempotency-Key a retry returns the first answer and opens nothing."""
    settings = settings_of(request)
    now = now_of(request)

    def write(session: Session) -> tuple[int, TicketView]:
        scope = principal.customer_scope(session)
        from omnibank.customers import repository as customers

        if customers.get(session, scope, body.customer_id) is None:
            raise NotFound(f"no customer {body.customer_id}")  # out of scope looks like not there
        desk = tickets.desk_of(session, settings)
        req = tickets.TicketRequest(
            kind=body.kind,
            category=body.category,
            customer_id=body.customer_id,
            channel=body.channel,
            subject=body.subject,
            priority=body.priority,
            description=body.description,
            benefit_id=body.benefit_id,
            coupon_id=body.coupon_id,
            source="api",
        )
        opened = tickets.open_ticket(session, desk, get_cipher(settings), req, by=principal.actor, now=now)
        audit.record(
            session,
            actor=principal.actor,
            action="ticket.open",
            subject_type="ticket",
            subject_id=opened.ticket.ticket_id,
            detail={"customer_id": body.customer_id},
            source=audit_source(request),
            at=now,
        )
        d = views.ticket_detail(
            session,
            get_cipher(settings),
            desk,
            Viewer(),
            opened.ticket.ticket_id,
            now=now,
            actor=principal.actor,
            record=False,
        )
        return 201, _view(d)

    response = run_write(
        settings,
        actor=principal.actor,
        key=idempotency_key,
        method="POST",
        path=request.url.path,
        payload=body,
        now=now,
        write=write,
    )
    _emit(request)
    return response


@router.patch("/{ticket_id}", response_model=TicketView)
def change_ticket(
    ticket_id: TicketId,
    body: TicketChange,
    request: Request,
    principal: Writer,
    idempotency_key: IdemKey = None,
) -> JSONResponse:
    """A status move (409 when the flow has not that move), an answer to the customer or a progress note, or
    an assignment to a member of staff or a queue — one per request."""
    settings = settings_of(request)
    now = now_of(request)
    given = [x for x in (body.status, body.answer, body.assign_staff or body.assign_queue) if x is not None]
    if len(given) != 1:
        raise InputRefused("give exactly one of status, answer, assign_staff / assign_queue")

    def write(session: Session) -> tuple[int, TicketView]:
        desk = tickets.desk_of(session, settings)
        viewer = Viewer(scope=principal.customer_scope(session))
        views.get(session, desk, viewer, ticket_id)  # 404 out of scope
        by = principal.actor
        if body.status is not None:
            tickets.set_status(session, desk, ticket_id, body.status, by=by, now=now, note=body.note)
        elif body.answer is not None:
            tickets.answer(session, desk, ticket_id, body.answer, by=by, now=now, note=body.note)
        else:
            tickets.assign(
                session,
                desk,
                ticket_id,
                staff_id=body.assign_staff,
                queue=body.assign_queue,
                by=by,
                now=now,
                note=body.note,
            )
        audit.record(
            session,
            actor=by,
            action="ticket.change",
            subject_type="ticket",
            subject_id=ticket_id,
            detail=body.model_dump(exclude_none=True, exclude={"note"}),
            source=audit_source(request),
            at=now,
        )
        d = views.ticket_detail(
            session, get_cipher(settings), desk, viewer, ticket_id, now=now, actor=by, record=False
        )
        return 200, _view(d)

    response = run_write(
        settings,
        actor=principal.actor,
        key=idempotency_key,
        method="PATCH",
        path=request.url.path,
        payload=body,
        now=now,
        write=write,
    )
    _emit(request)
    return response
