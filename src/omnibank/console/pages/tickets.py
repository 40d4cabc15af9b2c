"""The service desk's tickets (工单): the tickets of the customers the signed-in member of staff sees, with
the desk's figures and filters (open only by default, status, kind, owner, breached), and one ticket with
its fields, its SLA clocks and its history, masked and audited as :mod:`omnibank.service.views` reads them.

Reading needs ``customers:read`` (the list shows customers, masked). The forms (answer the customer, add a
progress note, move the status along :data:`omnibank.service.tickets.TRANSITIONS`, assign to a member of
staff or a queue) need ``tickets:write``, as the API's ``PATCH /tickets/{id}``, and are audited as it audits
them (``ticket.change``, the change without its note). A ticket out of sight is 404, for reading and
writing alike; a change the desk refuses (a move the flow has not, a ticket changed meanwhile, an unknown
member of staff) is shown on the ticket's page with its message. The ticket events go to the log after the
commit."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from omnibank.api.auth import Principal, client_ip, now_of, settings_of
from omnibank.audit import service as audit
from omnibank.console.i18n import N_, Speaker
from omnibank.console.labels import CHANNELS
from omnibank.console.web import CONSOLE, needs, redirect, render, speaker
from omnibank.db import unit_of_work
from omnibank.errors import AppError, InputRefused
from omnibank.leads.views import staff_of
from omnibank.security import get_cipher
from omnibank.service import tickets, views
from omnibank.service.models import TICKET_ACTIONS, TICKET_KINDS, TICKET_PRIORITIES, TICKET_STATUSES
from omnibank.service.sla import LEVELS, TARGETS
from omnibank.service.tickets import TRANSITIONS, Desk

router = APIRouter(prefix=CONSOLE)
log = logging.getLogger("omnibank.service")
Reader = Annotated[Principal, Depends(needs("customers:read"))]
Writer = Annotated[Principal, Depends(needs("tickets:write"))]
WRITE = "tickets:write"
TicketId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,40}$")]
PAGE = 50

STATUSES: dict[str, str] = {
    "new": N_("Newly opened"),
    "assigned": N_("Assigned"),
    "in_progress": N_("Being handled"),
    "waiting_customer": N_("Waiting for the customer"),
    "waiting_supplier": N_("Waiting for the supplier"),
    "resolved": N_("Resolved"),
    "closed": N_("Closed"),
    "reopened": N_("Reopened"),
}
KINDS: dict[str, str] = {
    "complaint": N_("Complaint"),
    "inquiry": N_("Inquiry"),
    "request": N_("Service request"),
    "alert": N_("Experience alert"),
}
#: the usual categories (others are shown as they are: a bank may use its own words)
CATEGORIES: dict[str, str] = {
    "benefit": N_("Benefits"),
    "card": N_("Cards"),
    "app": N_("Mobile banking"),
    "branch": N_("Branches"),
    "wealth": N_("Wealth management"),
    "loan": N_("Loans"),
    "faq": N_("Questions"),
    "general": N_("General"),
}
PRIORITIES: dict[str, str] = {
    "low": N_("Low"),
    "normal": N_("Normal"),
    "high": N_("High"),
    "urgent": N_("Urgent"),
}
ACTIONS: dict[str, str] = {
    "opened": N_("Opened"),
    "assigned": N_("Assigned to"),
    "status": N_("Status changed"),
    "responded": N_("Answered the customer"),
    "updated": N_("Progress note"),
    "escalated": N_("Escalated"),
    "supplier_notified": N_("Supplier notified"),
    "supplier_answered": N_("Supplier answered"),
}
CLOCKS: dict[str, str] = {
    "first_response": N_("First response"),
    "next_update": N_("Next update"),
    "resolution": N_("Resolution"),
}
CLOCK_STATES: dict[str, str] = {"met": N_("Met"), "running": N_("Running"), "breached": N_("Past due")}
SLA_LEVELS: dict[str, str] = {
    "warn": N_("Warning"),
    "breach": N_("Breached"),
    "breach2": N_("Breached badly"),
}
SPECS: dict[str, str] = {
    "calendar days": N_("%(n)s calendar days"),
    "business hours": N_("%(n)s business hours"),
    "business minutes": N_("%(n)s business minutes"),
}
_SPEC = re.compile(r"^(\d+) (calendar days|business hours|business minutes)$")
DONE: dict[str, str] = {
    "responded": N_("Your answer to the customer is recorded."),
    "updated": N_("Your progress note is recorded."),
    "status": N_("The status is changed."),
    "assigned": N_("The ticket is assigned."),
}
for _shown, _known in ((STATUSES, TICKET_STATUSES), (KINDS, TICKET_KINDS), (PRIORITIES, TICKET_PRIORITIES),
                       (ACTIONS, TICKET_ACTIONS), (CLOCKS, TARGETS), (SLA_LEVELS, LEVELS)):  # fmt: skip
    assert set(_shown) == set(_known), f"label every value: {sorted(set(_known) ^ set(_shown))}"

Status = Literal[
    "new", "assigned", "in_progress", "waiting_customer", "waiting_supplier", "resolved", "closed", "reopened"
]  # fmt: skip


def _source(request: Request) -> str:
    return f"console:{client_ip(request)}"


def _viewer(session: Session, principal: Principal) -> views.Viewer:
    """The tickets of the customers the caller sees (the API's rule: subtree, own customers, or the bank)."""
    return views.Viewer(scope=principal.customer_scope(session))


def _labels() -> dict[str, Any]:
    return {"statuses": STATUSES, "kinds": KINDS, "categories": CATEGORIES, "priorities": PRIORITIES,
            "actions": ACTIONS,
            "clocks": CLOCKS, "clock_states": CLOCK_STATES, "sla_levels": SLA_LEVELS,
            "channels": CHANNELS}  # fmt: skip


@router.get("/tickets")
def tickets_page(
    request: Request,
    principal: Reader,
    show: Annotated[Literal["open", "all"], Query()] = "open",
    status: Annotated[str, Query(max_length=32)] = "",
    kind: Annotated[str, Query(max_length=32)] = "",
    owner: Annotated[str, Query(pattern=r"^(|me|queue:[A-Za-z0-9_-]{1,32})$")] = "",
    breached: Annotated[Literal["", "yes", "no"], Query()] = "",
    after: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.:-]{1,40}$")] = None,
) -> HTMLResponse:
    """工单: the tickets the caller sees, filtered; the desk's figures above (open, owned by a queue, past
    a target)."""
    settings, now = settings_of(request), now_of(request)
    filters = {
        "show": show, "status": _one_of("status", status, STATUSES), "kind": _one_of("kind", kind, KINDS),
        "owner": owner or None, "breached": breached or None,
    }  # fmt: skip
    with unit_of_work(settings) as session:
        desk = tickets.desk_of(session, settings)
        viewer = _viewer(session, principal)
        staff_id = staff_of(session, principal.actor, principal.kind)
        who = staff_id if owner == "me" else owner or None
        counts = views.desk_counts(session, desk, viewer)
        page = None
        if owner != "me" or staff_id is not None:
            page = views.ticket_page(
                session, get_cipher(settings), desk, viewer, now=now, actor=principal.actor,
                source=_source(request), status=filters["status"], open_only=show == "open" and not status,
                kind=filters["kind"], owner=who, breached=None if not breached else breached == "yes",
                after=after, limit=PAGE,
            )  # fmt: skip
    return render(request, "tickets/list.html", {
        "page": page, "counts": counts, "filters": filters, "staff_id": staff_id, "now": now,
        "queues": [(q.id, q.name) for q in desk.routing.queues], "query": _query(filters), **_labels(),
    })  # fmt: skip


def _one_of(name: str, value: str, allowed: dict[str, str]) -> str | None:
    """A filter's value (empty: any), or refused naming the field."""
    if not value:
        return None
    if value not in allowed:
        raise InputRefused(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _spec_label(say: Speaker) -> Callable[[str], str]:
    """A target's allowance (``8 business hours``) in the page's language."""

    def label(spec: str) -> str:
        found = _SPEC.match(spec)
        return say.gettext(SPECS[found.group(2)], n=found.group(1)) if found else spec

    return label


def _query(filters: dict[str, str | None]) -> str:
    """The filters as a query string, for the next page's link."""
    return urlencode({k: v for k, v in filters.items() if v is not None})


def _detail(
    request: Request, principal: Principal, ticket_id: str, *, error: str | None = None, status: int = 200
) -> HTMLResponse:
    settings, now = settings_of(request), now_of(request)
    with unit_of_work(settings) as session:
        desk = tickets.desk_of(session, settings)
        viewer = _viewer(session, principal)
        detail = views.ticket_detail(session, get_cipher(settings), desk, viewer, ticket_id, now=now,
                                     actor=principal.actor, source=_source(request))  # fmt: skip
    t = detail.item.ticket
    moves = [s for s in TRANSITIONS.get(t.status, ()) if not (s == "assigned" and t.owner_staff_id is None)]
    done = request.query_params.get("done")
    return render(request, "tickets/detail.html", {
        "d": detail, "t": t, "now": now, "moves": moves, "error": error,
        "done": DONE.get(done or ""), "can_write": principal.can(WRITE),
        "queues": [(q.id, q.name) for q in desk.routing.queues], "spec_label": _spec_label(speaker(request)),
        **_labels(),
    }, status=status)  # fmt: skip


@router.get("/tickets/{ticket_id}")
def ticket_page(ticket_id: TicketId, request: Request, principal: Reader) -> HTMLResponse:
    """One ticket: its fields, the customer masked, its SLA clocks now, its history; the forms for those who
    may change it. Out of sight: 404."""
    return _detail(request, principal, ticket_id)


def _change(
    request: Request, principal: Principal, ticket_id: str, done: str, change: dict[str, str | None],
    apply: Callable[[Session, Desk], object],
) -> Response:  # fmt: skip
    """Apply a change to a ticket the caller sees (else 404) and commit it; a change the desk refuses is
    shown on the ticket's page. Then the ticket events to the log, and back to the ticket."""
    settings = settings_of(request)
    with unit_of_work(settings) as session:
        desk = tickets.desk_of(session, settings)
        views.get(session, desk, _viewer(session, principal), ticket_id)  # out of sight: 404
    try:
        with unit_of_work(settings) as session:
            apply(session, desk)
            audit.record(session, actor=principal.actor, action="ticket.change", subject_type="ticket",
                         subject_id=ticket_id, detail={k: v for k, v in change.items() if v is not None},
                         source=_source(request), at=now_of(request))  # fmt: skip
    except AppError as exc:  # rolled back; the page says why
        return _detail(request, principal, ticket_id, error=exc.message, status=exc.status)
    try:
        tickets.emit_pending(settings, now=now_of(request))
    except (AppError, OSError):  # committed: the events stay pending for the next emit
        log.exception("ticket events not emitted yet for %s", ticket_id)
    return redirect(f"{CONSOLE}/tickets/{ticket_id}?done={done}")


def _note(note: str) -> str | None:
    return note.strip() or None


@router.post("/tickets/{ticket_id}/answer", response_model=None)
def answer_ticket(
    ticket_id: TicketId,
    request: Request,
    principal: Writer,
    action: Annotated[Literal["responded", "updated"], Form()],
    note: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """An answer to the customer (``responded``) or a progress note (``updated``)."""

    def apply(session: Session, desk: Desk) -> object:
        return tickets.answer(session, desk, ticket_id, action, by=principal.actor, now=now_of(request),
                              note=_note(note))  # fmt: skip

    return _change(request, principal, ticket_id, action, {"answer": action}, apply)


@router.post("/tickets/{ticket_id}/status", response_model=None)
def move_ticket(
    ticket_id: TicketId,
    request: Request,
    principal: Writer,
    status: Annotated[Status, Form()],
    note: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """A move along the status flow (a move the flow has not: the page says which it allows)."""

    def apply(session: Session, desk: Desk) -> object:
        return tickets.set_status(session, desk, ticket_id, status, by=principal.actor, now=now_of(request),
                                  note=_note(note))  # fmt: skip

    return _change(request, principal, ticket_id, "status", {"status": status}, apply)


@router.post("/tickets/{ticket_id}/assign", response_model=None)
def assign_ticket(
    ticket_id: TicketId,
    request: Request,
    principal: Writer,
    staff_id: Annotated[str, Form(max_length=32)] = "",
    queue: Annotated[str, Form(max_length=32)] = "",
    note: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """To a member of staff (their id) or to a queue: one of them."""

    def apply(session: Session, desk: Desk) -> object:
        return tickets.assign(session, desk, ticket_id, staff_id=staff_id.strip() or None,
                              queue=queue.strip() or None, by=principal.actor, now=now_of(request),
                              note=_note(note))  # fmt: skip

    change = {"assign_staff": staff_id.strip() or None, "assign_queue": queue.strip() or None}
    return _change(request, principal, ticket_id, "assigned", change, apply)
