"""The home page: today's work for the signed-in member of staff — their leads due and their unit's queue,
the customers they look after, stock and budget alerts, and the campaigns live. Each block only for those
whose role has it; a handful of queries in all."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from omnibank.api.auth import client_ip, now_of, settings_of
from omnibank.benefits.views import StockRow, stock_view
from omnibank.campaigns.views import CampaignLine, campaign_list
from omnibank.config import Settings
from omnibank.console.web import CONSOLE, Staff, render
from omnibank.customers import repository as customers
from omnibank.customers.repository import Scope
from omnibank.cx.views import alert_counts
from omnibank.db import unit_of_work
from omnibank.errors import AppError
from omnibank.leads.views import LeadCounts, LeadItem, lead_counts, my_leads
from omnibank.security import get_cipher
from omnibank.service.tickets import desk_of
from omnibank.service.views import DeskCounts, Viewer, desk_counts

router = APIRouter(prefix=CONSOLE)
BUDGET_ALERT = Decimal("0.8")  # a campaign that has used this share of a budget is an alert
SOON = 8  # leads shown


@dataclass(frozen=True)
class Today:
    customers: int | None
    leads: LeadCounts | None
    due: list[LeadItem]
    stock_alerts: list[StockRow]
    budget_alerts: list[CampaignLine]
    live: list[CampaignLine]


@router.get("")
def home(request: Request, principal: Staff) -> HTMLResponse:
    settings, now = settings_of(request), now_of(request)
    with unit_of_work(settings) as session:
        scope = principal.customer_scope(session)
        seen = customers.count(session, scope) if principal.sees_customers else None
        counts = due = None
        if principal.can("leads:write") and principal.sees_customers:
            staff_id = principal.rm_id or _staff_id(session, principal)
            counts = lead_counts(session, scope, staff_id, now=now)
            if counts.mine_open:
                source = f"console:{client_ip(request)}"
                due = my_leads(session, get_cipher(settings), scope, staff_id, now=now, actor=principal.actor,
                               source=source, status="new", limit=SOON).items  # fmt: skip
        stock = []
        if principal.can("benefits:read"):
            stock = [r for r in stock_view(session, now=now, supplier_id=principal.supplier_id) if r.warning]
        campaigns = campaign_list(session) if principal.can("campaigns:read") else []
        tickets = _ticket_counts(session, settings, scope) if principal.sees_customers else None
        alerts = alert_counts(session, Viewer(scope=scope)) if principal.sees_customers else None
    today = Today(
        customers=seen, leads=counts, due=due or [], stock_alerts=stock,
        budget_alerts=[c for c in campaigns if (c.used_share or 0) >= BUDGET_ALERT],
        live=[c for c in campaigns if c.status == "active"],
    )  # fmt: skip
    return render(request, "home.html", {"today": today, "now": now, "tickets": tickets, "alerts": alerts})


def _ticket_counts(session: Session, settings: Settings, scope: Scope) -> DeskCounts | None:
    """The service desk's figures for the customers seen (None if the desk's files are broken: the
    tickets page says why)."""
    try:
        return desk_counts(session, desk_of(session, settings), Viewer(scope=scope))
    except AppError:
        return None


def _staff_id(session: object, principal: object) -> str | None:
    """A signed-in user's staff id (an RM's is on the principal; others' on their account)."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from omnibank.users.models import User

    assert isinstance(session, Session)
    user_id = getattr(principal, "user_id", None)
    if user_id is None:
        return None
    staff: str | None = session.scalar(select(User.staff_id).where(User.id == user_id))
    return staff
