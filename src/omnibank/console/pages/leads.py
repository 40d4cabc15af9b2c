"""Leads: "my leads" (an RM's own, soonest due first) and the branch queue (the unassigned leads of the
customers the caller sees), masked and audited as the API's /leads; the follow-up form of a lead posts its
status with a note (the API's rules: only allowed moves, a lead out of scope is 404). Needs
``leads:write``."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from omnibank.api.auth import Principal, client_ip, now_of, settings_of
from omnibank.console.i18n import N_
from omnibank.console.web import CONSOLE, needs, redirect, render
from omnibank.db import unit_of_work
from omnibank.errors import AppError
from omnibank.leads import service, views
from omnibank.leads.repository import Viewer
from omnibank.security import get_cipher

router = APIRouter(prefix=CONSOLE)
log = logging.getLogger("omnibank.leads")
Worker = Annotated[Principal, Depends(needs("leads:write"))]
LeadId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
PAGE = 50

STATUSES = {"new": N_("New"), "contacted": N_("Contacted"), "won": N_("Won"), "lost": N_("Lost")}
MOVES = {"new": ("contacted", "won", "lost"), "contacted": ("won", "lost"), "won": (), "lost": ()}


def _source(request: Request) -> str:
    return f"console:{client_ip(request)}"


@router.get("/leads")
def leads_page(
    request: Request,
    principal: Worker,
    mine_after: Annotated[str | None, Query(alias="mine", pattern=r"^[A-Za-z0-9_-]{1,32}$")] = None,
    queue_after: Annotated[str | None, Query(alias="queue", pattern=r"^[A-Za-z0-9_-]{1,32}$")] = None,
) -> HTMLResponse:
    settings, now = settings_of(request), now_of(request)
    cipher = get_cipher(settings)
    with unit_of_work(settings) as session:
        scope = principal.customer_scope(session)
        staff_id = views.staff_of(session, principal.actor, principal.kind)
        mine = views.my_leads(session, cipher, scope, staff_id, now=now, actor=principal.actor,
                              source=_source(request), after=mine_after, limit=PAGE)  # fmt: skip
        queue = views.branch_queue(session, cipher, scope, now=now, actor=principal.actor,
                                   source=_source(request), after=queue_after, limit=PAGE)  # fmt: skip
    return render(request, "leads/page.html", {
        "mine": mine, "queue": queue, "staff_id": staff_id, "now": now, "statuses": STATUSES, "moves": MOVES,
        "mine_after": mine_after, "queue_after": queue_after,
    })  # fmt: skip


@router.post("/leads/{lead_id}/status", response_model=None)
def set_lead_status(
    lead_id: LeadId,
    request: Request,
    principal: Worker,
    status: Annotated[str, Form(pattern=r"^(contacted|won|lost)$")],
    note: Annotated[str, Form(max_length=500)] = "",
) -> RedirectResponse:
    """The follow-up of a lead the caller sees (out of scope: 404; a move not allowed: 409)."""
    settings, now = settings_of(request), now_of(request)
    with unit_of_work(settings) as session:
        _, change = views.set_status(
            session, Viewer(scope=principal.customer_scope(session)), lead_id, status, by=principal.actor,
            staff_id=views.staff_of(session, principal.actor, principal.kind), now=now,
            note=note.strip() or None, source=_source(request),
        )  # fmt: skip
    try:
        service.emit_events(settings, change.events, now=now)
    except (AppError, OSError):  # committed: the events stay pending for `omnibank leads emit`
        log.exception("lead events not emitted yet for %s", lead_id)
    return redirect(f"{CONSOLE}/leads?done={lead_id}#lead-{lead_id}")
