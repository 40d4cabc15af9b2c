"""/customers: search by phone or ID number, list, count, the masked 360 view and the audited reveal.
Every query runs through customers.repository, which applies the caller's scope."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from omnibank.api.auth import Principal, audit_source, now_of, require, settings_of
from omnibank.api.errors import ERROR_RESPONSES, InvalidRequest
from omnibank.audit import service as audit
from omnibank.benefits import ledger
from omnibank.customers import repository, service
from omnibank.customers.models import Customer
from omnibank.customers.reveal import reveal_field
from omnibank.customers.schemas import (
    CustomerCount,
    CustomerList,
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


@router.get("", response_model=CustomerList)
def list_customers(
    request: Request,
    principal: Reader,
    phone: Annotated[str | None, Query(pattern=r"^\+?[0-9 -]{5,20}$")] = None,
    id_number: Annotated[str | None, Query(pattern=r"^[0-9]{17}[0-9Xx]$")] = None,
    after: Annotated[str | None, Query(pattern=_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> CustomerList:
    """With ``phone`` or ``id_number``: exact search through the blind index. Without: the customers the
    caller sees, by id, a page at a time. Names and phones masked; audited."""
    settings = settings_of(request)
    cipher = get_cipher(settings)
    if phone and id_number:
        raise InvalidRequest("give phone or id_number, not both",
                       details={"loc": ["query", "phone"]})  # fmt: skip
    with unit_of_work(settings) as session:
        scope = principal.customer_scope(session)
        if phone or id_number:
            found = service.find_customers(
                session,
                cipher,
                actor=principal.actor,
                phone=phone,
                id_number=id_number,
                scope=scope,
                source=audit_source(request),
            )
            items = [_summary(cipher, c) for c in found[:limit]]
            return CustomerList(items=items, total=len(found), next_after=None)
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
        profile = service.masked_profile(
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
    """The plaintext of one personal field (branch managers and administrators), with a reason; audited."""
    settings = settings_of(request)
    with unit_of_work(settings) as session:
        value = reveal_field(
            session, get_cipher(settings), customer_id, field=body.field, reason=body.reason,
            actor=principal.actor, scope=principal.customer_scope(session), source=audit_source(request),
        )  # fmt: skip
    return RevealResponse(customer_id=customer_id, field=body.field, value=value)
