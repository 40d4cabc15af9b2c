"""Benefits: the catalogue with each tracked benefit's stock and stock-out warning, and the supplier
scorecard. A supplier's user sees its own benefits and its own scorecard line."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from omnibank.api.auth import Principal, now_of, settings_of
from omnibank.benefits import views
from omnibank.console.i18n import N_, Speaker
from omnibank.console.labels import BENEFIT_TYPES as TYPES
from omnibank.console.web import CONSOLE, needs, render, speaker
from omnibank.db import unit_of_work
from omnibank.service.suppliers import scorecard_tickets

router = APIRouter(prefix=CONSOLE)
Reader = Annotated[Principal, Depends(needs("benefits:read"))]

WARNINGS = {"out": N_("Out of stock"), "low": N_("Low stock")}
REASONS = {
    "out_of_stock": N_("Nothing left"),
    "below_share": N_("Less than 10% of the stock received is left"),
    "runs_out_soon": N_("Runs out within 7 days at the last 7 days' rate"),
}
SUPPLIER_STATES = {
    "active": N_("Active"),
    "warning": N_("Warning"),
    "rectification": N_("Rectification"),
    "suspended": N_("Suspended"),
}
STATUSES = {"active": N_("Active"), "inactive": N_("Inactive")}


def _supplier_of(principal: Principal) -> str | None:
    return principal.supplier_id if principal.role == "supplier" else None


def _stock_chart(say: Speaker, overview: views.Overview) -> dict[str, Any]:
    tracked = [r for r in overview.rows if r.stock is not None]
    return {
        "tooltip": {"trigger": "axis"},
        "legend": {"data": [say.gettext("Used"), say.gettext("Left")]},
        "grid": {"left": 50, "right": 20, "bottom": 60, "containLabel": True},
        "xAxis": {"type": "category", "data": [r.benefit.name for r in tracked], "axisLabel": {"rotate": 30}},
        "yAxis": {"type": "value"},
        "series": [
            {"name": say.gettext("Used"), "type": "bar", "stack": "stock", "color": "#4a5263",
             "data": [r.stock.granted for r in tracked if r.stock]},
            {"name": say.gettext("Left"), "type": "bar", "stack": "stock", "color": "#0b4f8a",
             "data": [r.stock.available for r in tracked if r.stock]},
        ],
    }  # fmt: skip


@router.get("/benefits")
def benefits_page(request: Request, principal: Reader) -> HTMLResponse:
    say = speaker(request)
    with unit_of_work(settings_of(request)) as session:
        overview = views.overview(session, now=now_of(request), supplier_id=_supplier_of(principal))
    return render(
        request,
        "benefits/page.html",
        {
            "overview": overview,
            "warnings": WARNINGS,
            "reasons": REASONS,
            "types": TYPES,
            "statuses": STATUSES,
            "supplier_states": SUPPLIER_STATES,
            "stock_chart": _stock_chart(say, overview),
        },
    )


@router.get("/benefits/suppliers")
def suppliers_page(
    request: Request, principal: Reader, days: Annotated[int, Query(ge=1, le=366)] = 90
) -> HTMLResponse:
    say = speaker(request)
    settings = settings_of(request)
    until = now_of(request).astimezone(settings.tz).date()
    with unit_of_work(settings) as session:
        tickets = scorecard_tickets(session, until=until, days=days, tz=settings.tz, now=now_of(request))
        supplier = _supplier_of(principal)
        lines = views.scorecard_view(
            session, until=until, days=days, tz=settings.tz, supplier_id=supplier, tickets=tickets
        )
    chart = {
        "tooltip": {"trigger": "axis"},
        "grid": {"left": 40, "right": 20, "bottom": 40, "containLabel": True},
        "xAxis": {"type": "category", "data": [ln.name for ln in lines]},
        "yAxis": {"type": "value", "min": 0, "max": 100},
        "series": [{"name": say.gettext("Score"), "type": "bar", "color": "#0b4f8a",
                    "data": [ln.score for ln in lines],
                    "markLine": {"silent": True, "symbol": "none",
                                 "data": [{"yAxis": 90}, {"yAxis": 75}, {"yAxis": 60}]}}],
    }  # fmt: skip
    return render(
        request,
        "benefits/suppliers.html",
        {
            "lines": lines,
            "days": days,
            "first": until - timedelta(days=days - 1),
            "until": until,
            "supplier_states": SUPPLIER_STATES,
            "score_chart": chart,
        },
    )
