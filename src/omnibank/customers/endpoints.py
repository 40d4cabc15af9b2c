"""/customers: search by phone or ID number (in a POST body: a personal number never travels in a URL,
which access logs and proxies keep), list, count, the masked 360 view and the audited reveal. Every query
runs through customers.repository, which applies the caller's scope."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError

from omnibank.api.auth import Principal, audit_source, now_of, require, settings_of
from omnibank.api.errors import ERROR_RESPONSES
from omnibank.customer_ops import view as read
from omnibank.customers import repository
from omnibank.customers.reveal import reveal_field
from omnibank.customers.schemas import (
    ContactLineRead,
    CouponLineRead,
    CustomerCount,
    CustomerList,
    CustomerSearch,
    CustomerSummary,
    CustomerView,
    JourneyLineRead,
    LeadLineRead,
    RecommendedRead,
    RevealRequest,
    RevealResponse,
    TagRead,
)
from omnibank.db import unit_of_work
from omnibank.security import get_cipher

router = APIRouter(prefix="/customers", tags=["customers"], responses=ERROR_RESPONSES)
Reader = Annotated[Principal, Depends(require("customers:read"))]
_ID = r"^[A-Za-z0-9_-]{1,32}$"


def _summary(line: read.CustomerLine) -> CustomerSummary:
    return CustomerSummary(**vars(line))


_IN_URL = ("phone", "id_number")


@router.get("", response_model=CustomerList)
def list_customers(
    request: Request,
    principal: Reader,
    after: Annotated[str | None, Query(pattern=_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> CustomerList:
    """The customers the caller sees, by id, a page at a time. Names and phones masked; audited. (A search
    by phone or ID number is ``POST /customers/search``: one in the URL is refused.)"""
    given = [name for name in _IN_URL if name in request.query_params]
    if given:  # refused, not answered (the value is in the URL already: the access log redacts it)
        raise RequestValidationError(
            [{"loc": ("query", name), "type": "search_by_post",
              "msg": "not in a URL: search with POST /api/v1/customers/search and the number in the body"}
             for name in given]
        )  # fmt: skip
    settings = settings_of(request)
    cipher = get_cipher(settings)
    with unit_of_work(settings) as session:
        found = read.customer_page(
            session, cipher, principal.customer_scope(session), after=after, limit=limit,
            actor=principal.actor, source=audit_source(request),
        )  # fmt: skip
    return CustomerList(
        items=[_summary(c) for c in found.items], total=found.total, next_after=found.next_after
    )


@router.post("/search", response_model=CustomerList)
def search_customers(body: CustomerSearch, request: Request, principal: Reader) -> CustomerList:
    """Exact search by ``phone`` or ``id_number`` (one of them, in the body) through the blind index, among
    the customers the caller sees. Names and phones masked; the search is audited (without the number)."""
    settings = settings_of(request)
    cipher = get_cipher(settings)
    with unit_of_work(settings) as session:
        found = read.search_customers(
            session, cipher, principal.customer_scope(session), kind="phone" if body.phone else "id_number",
            value=body.phone or body.id_number or "", actor=principal.actor, source=audit_source(request),
            limit=body.limit,
        )  # fmt: skip
    return CustomerList(items=[_summary(c) for c in found.items], total=found.total, next_after=None)


@router.get("/count", response_model=CustomerCount)
def count_customers(request: Request, principal: Reader) -> CustomerCount:
    """How many customers the caller sees."""
    with unit_of_work(settings_of(request)) as session:
        return CustomerCount(count=repository.count(session, principal.customer_scope(session)))


@router.get("/{customer_id}", response_model=CustomerView)
def get_customer(customer_id: str, request: Request, principal: Reader) -> CustomerView:
    """The customer 360 (masked): profile, tags, saved segments, points, coupons, journeys, leads, contact
    history and the benefits to offer now (with the reason). Audited."""
    settings = settings_of(request)
    today = now_of(request).astimezone(settings.tz).date()
    with unit_of_work(settings) as session:
        view = read.customer_360(
            session, settings, get_cipher(settings), customer_id, actor=principal.actor, today=today,
            scope=principal.customer_scope(session), source=audit_source(request), now=now_of(request),
            events=0, campaigns=False,
        )  # fmt: skip
    return CustomerView(
        **vars(view.profile),
        tags=[TagRead(tag=t.tag, category=t.category, since=t.since) for t in view.tags],
        segments=view.segments,
        points=view.points,
        coupons=[CouponLineRead.model_validate(c) for c in view.coupons],
        journeys=[JourneyLineRead.model_validate(j) for j in view.journeys],
        leads=[LeadLineRead.model_validate(x) for x in view.leads],
        contacts=[ContactLineRead.model_validate(m) for m in view.contacts],
        recommended=[RecommendedRead.model_validate(r) for r in view.recommended],
    )


@router.post("/{customer_id}/reveal", response_model=RevealResponse)
def reveal(
    customer_id: str,
    body: RevealRequest,
    request: Request,
    principal: Annotated[Principal, Depends(require("customers:reveal"))],
) -> RevealResponse:
    """The plaintext of one personal field, or the birth date (branch managers and administrators), with a
    reason; audited."""
    settings = settings_of(request)
    with unit_of_work(settings) as session:
        value = reveal_field(
            session, get_cipher(settings), customer_id, field=body.field, reason=body.reason,
            actor=principal.actor, scope=principal.customer_scope(session), source=audit_source(request),
        )  # fmt: skip
    return RevealResponse(customer_id=customer_id, field=body.field, value=value)
