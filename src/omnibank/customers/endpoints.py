"""/customers: search by phone or ID number (in a POST body: a personal number never travels in a URL,
which access logs and proxies keep), list, count, the masked 360 view and the audited reveal. Every query
runs through customers.repository, which applies the caller's scope."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError

from omnibank.api.auth import Principal, audit_source, now_of, require, settings_of
from omnibank.api.errors import ERROR_RESPONSES
from omnibank.audit import service as audit
from omnibank.benefits import ledger
from omnibank.customer_ops.profile import masked_profile
from omnibank.customers import repository, service
from omnibank.customers.models import Customer
from omnibank.customers.reveal import reveal_field
from omnibank.customers.schemas import (
    CustomerCount,
    CustomerList,
    CustomerSearch,
    CustomerSummary,
    CustomerView,
    RevealRequest,
    RevealResponse,
    TagRead,
)
from omnibank.db import unit_of_work
from omnibank.kit.crypto import FieldCipher
from omnibank.kit.masking import mask_name, mask_phone
from omnibank.security import get_cipher
from omnibank.segments.service import segments_of
from omnibank.tags.service import tags_of

router = APIRouter(prefix="/customers", tags=["customers"], responses=ERROR_RESPONSES)
Reader = Annotated[Principal, Depends(require("customers:read"))]
_ID = r"^[A-Za-z0-9_-]{1,32}$"


def _summary(cipher: FieldCipher, c: Customer) -> CustomerSummary:
    cid = c.customer_id
    return CustomerSummary(
        customer_id=cid,
        name=mask_name(cipher.decrypt(c.name_enc, context=f"customers.name:{cid}")),
        phone=mask_phone(cipher.decrypt(c.phone_enc, context=f"customers.phone:{cid}")),
        branch_id=c.branch_id,
        rm_id=c.rm_id,
    )


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
        scope = principal.customer_scope(session)
        rows = repository.page(session, scope, after=after, limit=limit)
        total = repository.count(session, scope)
        items = [_summary(cipher, c) for c in rows]
        audit.record(
            session, actor=principal.actor, action="customer.list", subject_type="customer", subject_id=None,
            detail={"shown": [c.customer_id for c in rows], "fields": ["name", "phone"]},
            source=audit_source(request),
        )  # fmt: skip
    return CustomerList(
        items=items, total=total, next_after=rows[-1].customer_id if len(rows) == limit else None
    )


@router.post("/search", response_model=CustomerList)
def search_customers(body: CustomerSearch, request: Request, principal: Reader) -> CustomerList:
    """Exact search by ``phone`` or ``id_number`` (one of them, in the body) through the blind index, among
    the customers the caller sees. Names and phones masked; the search is audited (without the number)."""
    settings = settings_of(request)
    cipher = get_cipher(settings)
    with unit_of_work(settings) as session:
        found = service.find_customers(
            session, cipher, actor=principal.actor, phone=body.phone, id_number=body.id_number,
            scope=principal.customer_scope(session), source=audit_source(request),
        )  # fmt: skip
        items = [_summary(cipher, c) for c in found[: body.limit]]
    return CustomerList(items=items, total=len(found), next_after=None)


@router.get("/count", response_model=CustomerCount)
def count_customers(request: Request, principal: Reader) -> CustomerCount:
    """How many customers the caller sees."""
    with unit_of_work(settings_of(request)) as session:
        return CustomerCount(count=repository.count(session, principal.customer_scope(session)))


@router.get("/{customer_id}", response_model=CustomerView)
def get_customer(customer_id: str, request: Request, principal: Reader) -> CustomerView:
    """The customer 360 (masked): profile, tags, saved segments, points. Audited."""
    settings = settings_of(request)
    today = now_of(request).astimezone(settings.tz).date()
    with unit_of_work(settings) as session:
        scope = principal.customer_scope(session)
        profile = masked_profile(
            session,
            get_cipher(settings),
            customer_id,
            actor=principal.actor,
            today=today,
            scope=scope,
            source=audit_source(request),
        )
        tags = [
            TagRead(tag=t, category=cat or "", since=since) for t, cat, since in tags_of(session, customer_id)
        ]
        segments = segments_of(session, customer_id)
        points = ledger.balance(session, customer_id)
    return CustomerView(**vars(profile), tags=tags, segments=segments, points=points)


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
