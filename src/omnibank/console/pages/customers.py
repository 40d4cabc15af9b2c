"""Customers: the list of the customers the caller sees (masked, 50 a page), the exact search by phone, ID
number or customer id (in a POST body: a personal number never goes in a URL), the customer 360 in cards
(J6: the campaigns the customer can join now; B2: the benefits to offer, with the reason), and the audited
reveal of one field with a reason.

Everything is read through :mod:`omnibank.customer_ops.view` (the read layer ``customer show`` and
``GET /api/v1/customers/{id}`` share), with the caller's scope: a customer outside it is a 404."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from omnibank.api.auth import Principal, client_ip, now_of, settings_of
from omnibank.console.i18n import N_
from omnibank.console.labels import CHANNELS, OCCUPATIONS, PURPOSES
from omnibank.console.web import CONSOLE, needs, redirect, render, speaker
from omnibank.customer_ops import view as read
from omnibank.customers.reveal import MIN_REASON, REVEALABLE, RevealRefused, reveal_field
from omnibank.db import unit_of_work
from omnibank.security import get_cipher

router = APIRouter(prefix=CONSOLE)
Reader = Annotated[Principal, Depends(needs("customers:read"))]
Revealer = Annotated[Principal, Depends(needs("customers:reveal"))]
PAGE = 50
_MAX_VALUE = 40  # longer than any phone, ID number or customer id

KINDS = {
    "phone": N_("Phone"),
    "id_number": N_("ID number"),
    "customer_id": N_("Customer id"),
}
FIELDS = {
    "name": N_("Full name"),
    "phone": N_("Phone"),
    "id_number": N_("ID number"),
    "birth_date": N_("Birth date"),
}
IDENTIFIER_KINDS = {
    "phone": N_("Phone"),
    "id_number": N_("ID number"),
    "card_id": N_("Card"),
    "wechat_openid": N_("WeChat openid"),
    "app_user_id": N_("App user id"),
}
GENDERS = {"M": N_("Male"), "F": N_("Female")}
COUPON_STATUSES = {
    "granted": N_("Granted"),
    "claimed": N_("Claimed"),
    "active": N_("Activated"),
    "redeemed": N_("Redeemed"),
    "expired": N_("Expired"),
    "revoked": N_("Revoked"),
}
JOURNEY_STATUSES = {
    "active": N_("In progress"),
    "control": N_("Control group"),
    "done": N_("Completed"),
    "exited": N_("Exited"),
    "converted": N_("Converted"),
}
LEAD_STATUSES = {
    "new": N_("Not contacted yet"),
    "contacted": N_("Contacted"),
    "won": N_("Won"),
    "lost": N_("Lost"),
}
CONTACT_STATUSES = {
    "queued": N_("Queued"),
    "deferred": N_("Deferred (quiet hours)"),
    "suppressed": N_("Suppressed"),
    "sent": N_("Sent"),
    "delivered": N_("Delivered"),
    "failed": N_("Failed"),
    "clicked": N_("Clicked"),
}
SOURCES = {"customer record": N_("Customer record")}
#: why a benefit is recommended, for staff (benefits.recommend's sources; its REASONS address the customer)
RECOMMENDED_REASONS = {
    "similar": N_("Often redeemed by similar customers"),
    "again": N_("Redeemed this benefit before"),
    "age": N_("Popular in the same age band"),
    "spending": N_("Often redeemed by customers who spend alike"),
    "popular": N_("Popular benefit"),
}


def _labels() -> dict[str, Any]:
    return {
        "kinds": KINDS, "fields": FIELDS, "identifier_kinds": IDENTIFIER_KINDS, "genders": GENDERS,
        "occupations": OCCUPATIONS, "channels": CHANNELS, "coupon_statuses": COUPON_STATUSES,
        "journey_statuses": JOURNEY_STATUSES, "lead_statuses": LEAD_STATUSES,
        "contact_statuses": CONTACT_STATUSES, "purposes": PURPOSES, "sources": SOURCES,
        "recommended_reasons": RECOMMENDED_REASONS,
    }  # fmt: skip


def _source(request: Request) -> str:
    return f"console:{client_ip(request)}"


def _list_page(
    request: Request, principal: Principal, *, after: str | None, found: read.CustomerPage | None = None,
    kind: str = "phone", status: int = 200,
) -> HTMLResponse:  # fmt: skip
    settings = settings_of(request)
    cipher = get_cipher(settings)
    with unit_of_work(settings) as session:
        page = read.customer_page(session, cipher, principal.customer_scope(session), after=after, limit=PAGE,
                                  actor=principal.actor, source=_source(request))  # fmt: skip
    context = {"page": page, "after": after, "found": found, "kind": kind, **_labels()}
    return render(request, "customers/list.html", context, status=status)


@router.get("/customers")
def customers(request: Request, principal: Reader, after: str | None = None) -> HTMLResponse:
    return _list_page(request, principal, after=(after or None) and after[:32])


@router.post("/customers/search")
def search(
    request: Request,
    principal: Reader,
    kind: Annotated[str, Form()] = "phone",
    value: Annotated[str, Form()] = "",
) -> Response:
    """The search, answered on the list page (never a redirect carrying the number); a customer id the
    caller sees goes straight to its 360."""
    if kind not in KINDS:
        kind = "phone"
    value = value.strip()[:_MAX_VALUE]
    settings = settings_of(request)
    cipher = get_cipher(settings)
    found = read.CustomerPage(items=[], total=0, next_after=None)
    if value:
        with unit_of_work(settings) as session:
            found = read.search_customers(
                session, cipher, principal.customer_scope(session), kind=kind,  # type: ignore[arg-type]
                value=value, actor=principal.actor, source=_source(request),
            )  # fmt: skip
    if kind == "customer_id" and found.items:
        return redirect(f"{CONSOLE}/customers/{found.items[0].customer_id}")
    return _list_page(request, principal, after=None, found=found, kind=kind)


def _month_chart(events: list[read.EventLine]) -> dict[str, Any]:
    months: dict[str, int] = {}
    for e in sorted(events, key=lambda e: e.ts):
        key = e.ts.strftime("%Y-%m")
        months[key] = months.get(key, 0) + 1
    return {
        "grid": {"left": 40, "right": 16, "top": 16, "bottom": 28},
        "xAxis": {"type": "category", "data": list(months)},
        "yAxis": {"type": "value", "minInterval": 1},
        "series": [{"type": "bar", "data": list(months.values())}],
        "tooltip": {"trigger": "axis"},
    }


@router.get("/customers/{customer_id}")
def customer(customer_id: str, request: Request, principal: Reader) -> HTMLResponse:
    settings = settings_of(request)
    now = now_of(request)
    with unit_of_work(settings) as session:
        view = read.customer_360(
            session, settings, get_cipher(settings), customer_id[:32], actor=principal.actor,
            today=now.astimezone(settings.tz).date(), scope=principal.customer_scope(session),
            source=_source(request), now=now, events=0,  # the events come after the page (/events)
        )  # fmt: skip
    p = view.profile
    context = {
        "view": view,
        "p": p,
        "aum": Decimal(p.aum.replace(",", "")),
        "can_reveal": principal.can("customers:reveal"),
        "revealable": [f for f in REVEALABLE if f in FIELDS],
        "min_reason": MIN_REASON,
        "open_leads": sum(1 for x in view.leads if x.status in ("new", "contacted")),
        **_labels(),
    }
    return render(request, "customers/detail.html", context)


@router.get("/customers/{customer_id}/events")
def customer_events(customer_id: str, request: Request, principal: Reader) -> HTMLResponse:
    """The 360's recent events: a fragment the page loads after itself (htmx), or a page of its own."""
    settings = settings_of(request)
    with unit_of_work(settings) as session:
        scope = principal.customer_scope(session)
        events = read.customer_events(session, settings, get_cipher(settings), customer_id[:32], scope=scope,
                                      actor=principal.actor)  # fmt: skip
    context = {
        "customer_id": customer_id[:32],
        "events": events,
        "month_chart": _month_chart(events) if events else None,
        "by_type": Counter(e.type for e in events).most_common(),
        **_labels(),
    }
    fragment = bool(request.headers.get("hx-request"))
    return render(request, "customers/_events.html" if fragment else "customers/events.html", context)


@router.post("/customers/{customer_id}/reveal")
def reveal(
    customer_id: str,
    request: Request,
    principal: Revealer,
    field: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> HTMLResponse:
    """One field in clear, with a reason (audited by reveal_field): an htmx fragment, or a page without
    htmx. A refused request (no reason, an unknown field) answers with the reason on the form."""
    settings = settings_of(request)
    say = speaker(request)
    htmx = bool(request.headers.get("hx-request"))
    context: dict[str, Any] = {"customer_id": customer_id, "field": field, **_labels()}
    try:
        if len(reason.strip()) < MIN_REASON:
            raise RevealRefused("reason")
        with unit_of_work(settings) as session:
            context["value"] = reveal_field(
                session, get_cipher(settings), customer_id[:32], field=field, reason=reason[:500],
                actor=principal.actor, scope=principal.customer_scope(session), source=_source(request),
            )  # fmt: skip
        status = 200
    except RevealRefused:
        context["error"] = say.gettext(
            "Give one of the fields and a reason of at least %(n)s characters.", n=MIN_REASON
        )
        status = 200 if htmx else 422  # htmx swaps only a 2xx answer: the message must show on the form
    response = render(request, "customers/_revealed.html" if htmx else "customers/revealed.html", context,
                      status=status)  # fmt: skip
    response.headers["Cache-Control"] = "no-store"
    return response
