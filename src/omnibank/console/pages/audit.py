"""Audit: the trail, newest first, filtered by actor, action and subject (GET parameters), page by page; and
``verify`` (a POST: it reads the whole trail, seconds on millions of entries), showing whether the trail is
intact or the first entry that does not verify, and how long it took. Needs ``audit:read``."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from omnibank.api.auth import Principal, settings_of
from omnibank.audit import views
from omnibank.console.web import CONSOLE, needs, render
from omnibank.db import ensure_schema, get_engine, unit_of_work

router = APIRouter(prefix=CONSOLE)
Auditor = Annotated[Principal, Depends(needs("audit:read"))]
PAGE = 50
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
Text = Annotated[str | None, Query(max_length=128, pattern=_PRINTABLE)]


def _details(detail: str | None) -> str:
    try:
        value = json.loads(detail or "{}")
    except ValueError:
        return detail or ""
    if not isinstance(value, dict):
        return str(value)
    return ", ".join(f"{k}={v}" for k, v in value.items())


def _trail(request: Request, filters: dict[str, Any], before: int | None) -> dict[str, Any]:
    with unit_of_work(settings_of(request)) as session:
        page = views.trail(session, actor=filters["actor"], action=filters["action"],
                           subject=filters["subject"], before=before, limit=PAGE)  # fmt: skip
        rows = [(e.id, e.at, e.actor, e.source, e.action, e.subject_type, e.subject_id, _details(e.detail),
                 e.reason) for e in page.entries]  # fmt: skip
    return {"rows": rows, "next_before": page.next_before, "filters": filters, "before": before}


@router.get("/audit")
def audit_page(
    request: Request,
    principal: Auditor,
    actor: Text = None,
    action: Text = None,
    subject: Text = None,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    filters = {"actor": actor or None, "action": action or None, "subject": subject or None}
    return render(request, "audit/page.html", {**_trail(request, filters, before), "verification": None})


@router.post("/audit/verify")
def verify_trail(request: Request, principal: Auditor) -> HTMLResponse:
    settings = settings_of(request)
    ensure_schema(settings)
    with get_engine(settings).connect() as conn:
        verification = views.verify(conn, settings)
    filters = {"actor": None, "action": None, "subject": None}
    return render(
        request, "audit/page.html", {**_trail(request, filters, None), "verification": verification}
    )
