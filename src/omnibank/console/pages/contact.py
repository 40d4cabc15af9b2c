"""Contact: the outbox by status (a chart and a table), the latest messages (customer numbers and template
names only: no names, phones or message text) page by page, and the do-not-disturb entries open now — of
the customers the caller sees. Needs ``campaigns:read`` (the contact policy is the campaign managers'; the
API has no read endpoint for the outbox, its /contact/receipts is for gateways)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from omnibank.api.auth import Principal, now_of, settings_of
from omnibank.console.i18n import N_, Speaker
from omnibank.console.labels import PURPOSES
from omnibank.console.web import CONSOLE, needs, render, speaker
from omnibank.contact import views
from omnibank.contact.models import STATUSES
from omnibank.db import unit_of_work

router = APIRouter(prefix=CONSOLE)
Reader = Annotated[Principal, Depends(needs("campaigns:read"))]
PAGE = 50

LABELS = {"queued": N_("Queued"), "deferred": N_("Deferred"), "suppressed": N_("Suppressed"),
          "sent": N_("Sent"), "delivered": N_("Delivered"), "failed": N_("Failed"),
          "clicked": N_("Clicked")}  # fmt: skip


def _chart(say: Speaker, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "tooltip": {"trigger": "axis"},
        "grid": {"left": 50, "right": 20, "bottom": 30, "containLabel": True},
        "xAxis": {"type": "category", "data": [say.gettext(LABELS[s]) for s in STATUSES]},
        "yAxis": {"type": "value"},
        "series": [{"type": "bar", "color": "#0b4f8a", "label": {"show": True},
                    "data": [counts.get(s, 0) for s in STATUSES]}],
    }  # fmt: skip


@router.get("/contact")
def contact_page(
    request: Request,
    principal: Reader,
    status: Annotated[
        str | None, Query(pattern=r"^(queued|deferred|suppressed|sent|delivered|failed|clicked)$")
    ] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> HTMLResponse:
    settings, now = settings_of(request), now_of(request)
    with unit_of_work(settings) as session:
        scope = principal.customer_scope(session)
        counts = views.status_counts(session, scope=scope)
        messages = views.list_messages(session, status=status, limit=PAGE + 1, offset=(page - 1) * PAGE,
                                       scope=scope)  # fmt: skip
        dnd = views.dnd_entries(session, active_at=now, limit=PAGE, scope=scope)
    return render(request, "contact/page.html", {
        "counts": counts, "total": sum(counts.values()), "order": STATUSES, "labels": LABELS,
        "purposes": PURPOSES, "messages": messages[:PAGE], "more": len(messages) > PAGE, "page": page,
        "status": status, "dnd": dnd, "chart_option": _chart(speaker(request), counts),
    })  # fmt: skip
