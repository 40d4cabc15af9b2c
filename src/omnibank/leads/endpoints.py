"""/leads: the leads of the customers the caller sees (the org-subtree rule, applied in
leads.repository), one lead with its history, and the follow-up (status change, with Idempotency-Key).
Customer names and phones are masked; views and changes are audited."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from omnibank.api.auth import Principal, audit_source, now_of, require, settings_of
from omnibank.api.errors import ERROR_RESPONSES
from omnibank.api.idempotency import run_write
from omnibank.db import unit_of_work
from omnibank.errors import AppError
from omnibank.leads import service, views
from omnibank.leads.repository import Viewer
from omnibank.leads.service import Event
from omnibank.leads.views import LeadDetail, LeadItem
from omnibank.security import get_cipher

router = APIRouter(prefix="/leads", tags=["leads"], responses=ERROR_RESPONSES)
log = logging.getLogger("omnibank.leads")
Reader = Annotated[Principal, Depends(require("customers:read"))]
Writer = Annotated[Principal, Depends(require("leads:write"))]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
LeadId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
_STAFF = r"^[A-Za-z0-9_-]{1,32}$"


class LeadOut(BaseModel):
    lead_id: str
    customer_id: str
    customer_name: str = Field(description="Masked.")
    customer_phone: str = Field(description="Masked.")
    source: str
    journey: str | None
    step: str | None
    product_id: str | None
    note: str | None
    owner_staff_id: str | None = Field(description="Empty: the lead waits in the queue of org_id.")
    org_id: str
    status: str
    overdue: bool = Field(description="Still new and past due_at.")
    due_at: datetime
    created_at: datetime
    updated_at: datetime
    contacted_at: datetime | None
    closed_at: datetime | None
    escalated_at: datetime | None
    escalated_to: str | None


class LeadList(BaseModel):
    items: list[LeadOut]
    next_after: str | None = Field(description="Pass as `after` for the next page; empty on the last one.")


class HistoryOut(BaseModel):
    action: str
    at: datetime
    from_status: str | None
    to_status: str
    by: str
    staff_id: str | None
    note: str | None


class LeadView(LeadOut):
    history: list[HistoryOut]


class LeadPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["contacted", "won", "lost"]
    note: str | None = Field(default=None, max_length=500, description="No personal data; digit runs masked.")


def _out(item: LeadItem, now: datetime) -> LeadOut:
    lead = item.lead
    return LeadOut(
        lead_id=lead.lead_id, customer_id=lead.customer_id, customer_name=item.name,
        customer_phone=item.phone, source=lead.source, journey=lead.journey, step=lead.step,
        product_id=lead.product_id, note=lead.note,
        owner_staff_id=lead.owner_staff_id, org_id=lead.org_id, status=lead.status,
        overdue=lead.overdue(now), due_at=lead.due_at, created_at=lead.created_at, updated_at=lead.updated_at,
        contacted_at=lead.contacted_at, closed_at=lead.closed_at, escalated_at=lead.escalated_at,
        escalated_to=lead.escalated_to,
    )  # fmt: skip


def _view(detail: LeadDetail, now: datetime) -> LeadView:
    history = [
        HistoryOut(action=h.action, at=h.at, from_status=h.from_status, to_status=h.to_status, by=h.by,
                   staff_id=h.staff_id, note=h.note)
        for h in detail.history
    ]  # fmt: skip
    return LeadView(**_out(detail.item, now).model_dump(), history=history)


@router.get("", response_model=LeadList)
def list_leads(
    request: Request,
    principal: Reader,
    status: Annotated[Literal["new", "contacted", "won", "lost"] | None, Query()] = None,
    overdue: Annotated[bool, Query(description="Only leads still new past their due time.")] = False,
    owner: Annotated[str | None, Query(pattern=_STAFF, description="A staff id; `none`: the queue.")] = None,
    escalated: Annotated[bool | None, Query()] = None,
    after: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,32}$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> LeadList:
    """The leads of the customers the caller sees, soonest due first. Names and phones masked; audited."""
    settings = settings_of(request)
    now = now_of(request)
    with unit_of_work(settings) as session:
        found = views.lead_page(
            session, get_cipher(settings), Viewer(scope=principal.customer_scope(session)), now=now,
            actor=principal.actor, source=audit_source(request), status=status, overdue=overdue, owner=owner,
            escalated=escalated, after=after, limit=limit,
        )  # fmt: skip
    return LeadList(items=[_out(x, now) for x in found.items], next_after=found.next_after)


@router.get("/{lead_id}", response_model=LeadView)
def get_lead(lead_id: LeadId, request: Request, principal: Reader) -> LeadView:
    """One lead the caller sees, with its history (a lead of a customer out of scope: 404)."""
    settings = settings_of(request)
    now = now_of(request)
    with unit_of_work(settings) as session:
        scope = principal.customer_scope(session)
        detail = views.lead_detail(session, get_cipher(settings), Viewer(scope=scope), lead_id, now=now,
                                   actor=principal.actor, source=audit_source(request))  # fmt: skip
    return _view(detail, now)


@router.patch("/{lead_id}", response_model=LeadView)
def patch_lead(
    lead_id: LeadId, body: LeadPatch, request: Request, principal: Writer, idempotency_key: IdemKey = None
) -> JSONResponse:
    """Record the follow-up: new → contacted → won or lost (new → won / lost directly). An illegal move or a
    closed lead: 409. With an Idempotency-Key a retry replays the first answer. The event (``lead.<status>``)
    goes to the event log after the commit."""
    settings = settings_of(request)
    now = now_of(request)
    events: list[Event] = []

    def write(session: Session) -> tuple[int, LeadView]:
        _, change = views.set_status(  # 404 out of scope
            session, Viewer(scope=principal.customer_scope(session)), lead_id, body.status,
            by=principal.actor, staff_id=views.staff_of(session, principal.actor, principal.kind), now=now,
            note=body.note, source=audit_source(request),
        )  # fmt: skip
        events.extend(change.events)
        detail = views.lead_detail(session, get_cipher(settings), Viewer(), lead_id, now=now,
                                   actor=principal.actor, record=False)  # fmt: skip
        return 200, _view(detail, now)

    response = run_write(
        settings, actor=principal.actor, key=idempotency_key, method="PATCH", path=request.url.path,
        payload=body, now=now, write=write,
    )  # fmt: skip
    try:
        service.emit_events(settings, events, now=now)
    except (AppError, OSError):  # committed: the events stay pending for `omnibank leads emit`
        log.exception("lead events not emitted yet for %s", lead_id)
    return response
