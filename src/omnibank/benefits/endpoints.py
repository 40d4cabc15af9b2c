"""/benefits, /coupons and /points: the catalogue and stock, issuing, claiming and redeeming coupons, and
points, through the ledgers' own services. Staff act on the customers of their scope; a supplier sees
its own benefits and redeems its own coupons."""

from __future__ import annotations

import json
import re
import secrets
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from omnibank.api import fastlane
from omnibank.api.auth import (
    Principal,
    audit_source,
    fast_path_of,
    now_of,
    require,
    scope_orgs,
    settings_of,
)
from omnibank.api.errors import ERROR_RESPONSES, Forbidden
from omnibank.api.idempotency import KEY_PATTERN, after_write, request_hash, run_write
from omnibank.audit import service as audit
from omnibank.audit.keyed import audit_key
from omnibank.audit.service import wake_chainer
from omnibank.benefits import catalogue, granting, ledger, views
from omnibank.benefits.fastpath import Declined, FastPath, Idem
from omnibank.benefits.schemas import CouponRead
from omnibank.benefits.stock import count_stock_out
from omnibank.config import Settings
from omnibank.customers import repository as customers
from omnibank.customers.models import Customer
from omnibank.db import unit_of_work
from omnibank.errors import AppError, Conflict, NotFound
from omnibank.service.suppliers import scorecard_tickets

router = APIRouter(responses=ERROR_RESPONSES)
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
CouponWriter = Annotated[Principal, Depends(require("coupons:write"))]
_ID = r"^[A-Za-z0-9_.:-]{1,64}$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BenefitOut(BaseModel):
    id: str
    type: str
    name: str
    supplier_id: str | None
    supplier_status: str | None
    face_value: Decimal
    cost: Decimal
    points: int | None
    stock_tracked: bool
    available: int | None
    valid_days: int | None
    claim_days: int | None
    status: str


class StockOut(BaseModel):
    benefit_id: str
    name: str
    supplier_id: str | None
    received: int
    granted: int
    available: int
    stock_out_days: int
    warning: Literal["out", "low"] | None = Field(
        default=None, description="out: none left; low: under 10 % left or runs out within 7 days"
    )
    warning_reason: Literal["out_of_stock", "below_share", "runs_out_soon"] | None = None


class CouponOut(BaseModel):
    id: int
    campaign: str
    rule: str
    customer_id: str
    benefit_id: str
    branch_id: str | None
    face_value_fen: int | None
    status: str
    granted_at: datetime
    claim_by: datetime | None
    valid_from: datetime
    valid_to: datetime | None
    status_at: datetime
    duplicate: bool = Field(default=False, description="The grant key was issued before: that coupon.")


class CouponIssue(_In):
    customer_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    benefit_id: str = Field(pattern=_ID)
    campaign: str = Field(default="api", pattern=_ID)
    rule: str = Field(default="manual", pattern=_ID)
    grant_key: str | None = Field(
        default=None, min_length=1, max_length=200,
        description="Deterministic key of this grant; default derived from the Idempotency-Key.",
    )  # fmt: skip


class PostingOut(BaseModel):
    posting_id: int
    customer_id: str
    kind: str
    direction: str
    amount: int
    created_at: datetime | None = None
    duplicate: bool = False


class PointsOut(BaseModel):
    customer_id: str
    balance: int
    postings: list[PostingOut]


class PointsRedeem(_In):
    amount: int = Field(gt=0, le=10**9)
    reference: str = Field(default="", max_length=300)
    key: str | None = Field(default=None, min_length=1, max_length=200, description="Ledger idempotency key.")


def _coupon_out(c: CouponRead, *, duplicate: bool = False) -> CouponOut:
    return CouponOut(
        id=c.id, campaign=c.campaign, rule=c.rule, customer_id=c.customer_id, benefit_id=c.benefit_id,
        branch_id=c.branch_id, face_value_fen=c.face_value_fen, status=c.status, granted_at=c.granted_at,
        claim_by=c.claim_by, valid_from=c.valid_from, valid_to=c.valid_to, status_at=c.status_at,
        duplicate=duplicate,
    )  # fmt: skip


def _sees(session: Session, principal: Principal, customer_id: str) -> bool:
    """Whether the caller's scope holds this customer (one light statement: the id only)."""
    stmt = select(Customer.customer_id).where(Customer.customer_id == customer_id)
    return session.scalar(customers.scoped(stmt, principal.customer_scope(session))) is not None


def _visible_customer(session: Session, principal: Principal, customer_id: str) -> None:
    if not _sees(session, principal, customer_id):
        raise NotFound(f"no customer {customer_id}")


def _visible_coupon(session: Session, principal: Principal, coupon_id: int) -> CouponRead:
    """The coupon if the caller may act on it: a supplier on its own benefits' coupons, staff on their
    customers' (a coupon they may not see is not found)."""
    coupon = ledger.get_coupon(session, coupon_id)
    _may_act_on(session, principal, coupon)
    return coupon


def _may_act_on(session: Session, principal: Principal, coupon: CouponRead) -> None:
    if principal.role == "supplier":
        if catalogue.get_benefit(session, coupon.benefit_id).supplier_id != principal.supplier_id:
            raise NotFound(f"no coupon {coupon.id}")
    elif not _sees(session, principal, coupon.customer_id):
        raise NotFound(f"no coupon {coupon.id}")


# ------------------------------------------------------------------------------------------- catalogue


@router.get("/benefits", response_model=list[BenefitOut], tags=["benefits"])
def list_benefits(
    request: Request, principal: Annotated[Principal, Depends(require("benefits:read"))]
) -> list[BenefitOut]:
    """The catalogue (a supplier: its own benefits)."""
    supplier = principal.supplier_id if principal.role == "supplier" else None
    with unit_of_work(settings_of(request)) as session:
        rows = views.catalogue_view(session, supplier_id=supplier)
    return [BenefitOut.model_validate(vars(b)) for b in rows]


@router.get("/benefits/stock", response_model=list[StockOut], tags=["benefits"])
def stock(
    request: Request, principal: Annotated[Principal, Depends(require("benefits:read"))]
) -> list[StockOut]:
    """Stock of the tracked benefits with their stock-out warnings (a supplier: its own)."""
    supplier = principal.supplier_id if principal.role == "supplier" else None
    with unit_of_work(settings_of(request)) as session:
        lines = views.stock_view(session, now=now_of(request), supplier_id=supplier)
    return [StockOut.model_validate(vars(s)) for s in lines]


class ScoreOut(BaseModel):
    supplier_id: str
    name: str
    issued: int
    failed: int
    success_rate: Decimal
    stock_outs: int
    discrepancies: int
    complaints: int
    late_answers: int = Field(description="Answers to tickets that came after the supplier's target, or not.")
    score: int
    grade: str
    status: str
    recommended: str = Field(description="The state the grade calls for.")


@router.get("/benefits/suppliers/scorecard", response_model=list[ScoreOut], tags=["benefits"])
def scorecard(
    request: Request,
    principal: Annotated[Principal, Depends(require("benefits:read"))],
    days: Annotated[int, Query(ge=1, le=366, description="Bank-local days up to today.")] = 90,
) -> list[ScoreOut]:
    """The supplier scorecard over the last ``days`` bank-local days (a supplier: its own line)."""
    settings = settings_of(request)
    until = now_of(request).astimezone(settings.tz).date()
    supplier = principal.supplier_id if principal.role == "supplier" else None
    with unit_of_work(settings) as session:
        tickets = scorecard_tickets(session, until=until, days=days, tz=settings.tz, now=now_of(request))
        lines = views.scorecard_view(
            session, until=until, days=days, tz=settings.tz, supplier_id=supplier, tickets=tickets
        )
    return [ScoreOut.model_validate(vars(ln)) for ln in lines]


# --------------------------------------------------------------------------------------------- coupons


_REISSUED: dict[int | str, dict[str, Any]] = {
    200: {"model": CouponOut, "description": "Issued before under this grant key"}
}


@router.post("/coupons", response_model=CouponOut, status_code=201, tags=["coupons"], responses=_REISSUED)
async def issue_coupon(
    body: CouponIssue, request: Request, principal: CouponWriter, idempotency_key: IdemKey = None
) -> JSONResponse:
    """Issue one coupon to a customer of the caller's (stock and the budgets defined for the campaign and
    for its rule apply; refused: 409)."""
    if principal.role == "supplier":
        raise Forbidden("a supplier cannot issue coupons")
    settings = settings_of(request)
    now = now_of(request)
    source = audit_source(request)
    key = _grant_key(principal, body, idempotency_key)
    done = await fast_issue(request, principal, body, idempotency_key, key=key, now=now)
    if done is not None:
        return done

    def write(session: Session) -> tuple[int, CouponOut]:
        _visible_customer(session, principal, body.customer_id)
        result = granting.grant(
            session, key=key, campaign=body.campaign, rule=body.rule, customer_id=body.customer_id,
            benefit_id=body.benefit_id, granted_at=now, tz=settings.tz, actor=principal.actor,
            budgets=ledger.defined_budgets(session, body.campaign, body.rule),
        )  # fmt: skip
        if result.coupon is None:
            raise Conflict(f"the grant was refused: {result.reason}", code="grant_refused",
                           details={"reason": result.reason})  # fmt: skip
        if result.issued:
            audit.record(
                session, actor=principal.actor, action="coupon.grant", subject_type="coupon",
                subject_id=str(result.coupon.id), detail=_grant_detail(result.coupon), source=source, at=now,
            )  # fmt: skip
        return (201 if result.issued else 200), _coupon_out(result.coupon, duplicate=not result.issued)

    try:
        return await run_in_threadpool(
            run_write, settings, actor=principal.actor, key=idempotency_key, method="POST",
            path=request.url.path, payload=body, now=now, write=write,
        )  # fmt: skip
    except Conflict as refused:
        if refused.details.get("reason") == "out_of_stock":  # the refusal rolled the count back with it
            await run_in_threadpool(_count_stock_out, settings, body.benefit_id, now)
        raise


def _grant_detail(coupon: CouponRead) -> dict[str, Any]:
    """The detail of a coupon issue's audit entry (the same on both paths)."""
    return {"benefit": coupon.benefit_id, "campaign": coupon.campaign, "customer_id": coupon.customer_id,
            "rule": coupon.rule, "status": coupon.status}  # fmt: skip


def _grant_key(principal: Principal, body: CouponIssue, idempotency_key: str | None) -> str:
    if body.grant_key:
        return body.grant_key
    return f"api:{principal.actor}:{idempotency_key}" if idempotency_key else f"api:{secrets.token_hex(12)}"


async def fast_issue(
    request: Request,
    principal: Principal,
    body: CouponIssue,
    idempotency_key: str | None,
    *,
    key: str | None = None,
    now: datetime | None = None,
) -> JSONResponse | None:
    """The issue on the fast path (PostgreSQL), or None: no fast path here, or it declined (nothing was
    written) and the general path decides. The caller has checked who may issue."""
    start = _fast_start(request, principal, idempotency_key, body, now)
    if start is None:
        return None
    fast, settings, now, idem = start
    terms = await fast.terms(body.benefit_id)
    if terms is None:
        return None
    coupon = fast.planned(
        terms, key=key or _grant_key(principal, body, idempotency_key), campaign=body.campaign,
        rule=body.rule, customer_id=body.customer_id, benefit_id=body.benefit_id, at=now, zone=settings.tz,
    )  # fmt: skip
    out = _coupon_out(coupon).model_dump(mode="json")
    source, detail = audit_source(request), audit.detail_text(_grant_detail(coupon))
    mac = audit_key(settings).entry_mac(
        at=now, actor=principal.actor, action="coupon.grant", subject_type="coupon",
        subject_id=str(coupon.id), detail=detail, source=source, reason="",
    )  # fmt: skip
    try:
        orgs = await scope_orgs(request, principal)
        await fast.grant(coupon, terms, actor=principal.actor, orgs=orgs, idem=idem,
                         response=json.dumps(out, ensure_ascii=False), source=source, audit_detail=detail,
                         mac=mac, rm=principal.rm_id)  # fmt: skip
    except Declined:
        request.state.fast_declined = True
        return None  # the general path decides afresh: a refusal, a replay or the coupon issued before
    wake_chainer(settings)
    if idem:
        await after_write(settings, now)
    return JSONResponse(out, status_code=201)


def _fast_start(
    request: Request, principal: Principal, key: str | None, payload: BaseModel | None, now: datetime | None
) -> tuple[FastPath, Settings, datetime, Idem | None] | None:
    """What a fast-path write needs (the path, the settings, the time, the key as kept), or None: no fast
    path here, it declined this request before, or the key is one the general path refuses."""
    fast = fast_path_of(request)
    if fast is None or _declined_before(request):
        return None
    now = now or now_of(request)
    idem = _idem(request, principal, key, payload, now)
    if idem is False:
        return None
    return fast, settings_of(request), now, idem


def _declined_before(request: Request) -> bool:
    """The fast path declined this request already (in the coupon lane, which passed it on)."""
    return bool(getattr(request.state, "fast_declined", False))


def _count_stock_out(settings: Settings, benefit_id: str, now: datetime) -> None:
    with unit_of_work(settings) as session:
        count_stock_out(session, benefit_id, now, settings.tz)


def _idem(
    request: Request, principal: Principal, key: str | None, payload: BaseModel | None, now: datetime
) -> Idem | None | Literal[False]:
    """The Idempotency-Key as the fast path keeps it; None without one, False for one the general path
    refuses (it says why)."""
    if key is None:
        return None
    if not KEY_PATTERN.match(key):
        return False
    return Idem(
        actor=principal.actor, key=key, digest=request_hash("POST", request.url.path, payload),
        cutoff=now - timedelta(hours=settings_of(request).api_idempotency_ttl_hours),
    )  # fmt: skip


MAX_COUPON_ID = 2**62
CouponId = Annotated[int, Path(ge=1, le=MAX_COUPON_ID)]


async def _move(
    request: Request, principal: Principal, coupon_id: int, action: str, key: str | None
) -> JSONResponse:
    now = now_of(request)
    source = audit_source(request)
    done = await fast_move(request, principal, coupon_id, action, key, now=now)
    if done is not None:
        return done

    def write(session: Session) -> tuple[int, CouponOut]:
        # the move first (one compare-and-set statement), then whether the caller may act on that coupon:
        # if not, the move is rolled back with the rest of the transaction; a refused move reports a coupon
        # the caller cannot see as not found, whatever its state
        move = ledger.claim if action == "claim" else ledger.redeem
        try:
            moved = move(session, coupon_id, now=now, actor=principal.actor, source=source)
        except AppError:
            _visible_coupon(session, principal, coupon_id)
            raise
        _may_act_on(session, principal, moved)
        return 200, _coupon_out(moved)

    return await run_in_threadpool(
        run_write, settings_of(request), actor=principal.actor, key=key, method="POST",
        path=request.url.path, payload=None, now=now, write=write,
    )  # fmt: skip


async def fast_move(
    request: Request,
    principal: Principal,
    coupon_id: int,
    action: str,
    key: str | None,
    *,
    now: datetime | None = None,
) -> JSONResponse | None:
    """A claim or redemption on the fast path (PostgreSQL), or None: no fast path here, or it declined
    (nothing was written) and the general path decides. The caller has checked who may move it."""
    start = _fast_start(request, principal, key, None, now)
    if start is None:
        return None
    fast, settings, now, idem = start
    supplier = principal.supplier_id if principal.role == "supplier" else None
    source = audit_source(request)
    mac = audit_key(settings).entry_mac(  # of all but the detail, which the database reads from the coupon
        at=now, actor=principal.actor, action=f"coupon.{action}", subject_type="coupon",
        subject_id=str(coupon_id), detail=None, source=source, reason="",
    )  # fmt: skip
    try:
        moved = await fast.move(
            coupon_id, action, now=now, actor=principal.actor,
            orgs=None if supplier else await scope_orgs(request, principal), supplier=supplier,
            source=source, idem=idem, mac=mac, rm=None if supplier else principal.rm_id,
            respond=lambda c: json.dumps(_coupon_out(c).model_dump(mode="json"), ensure_ascii=False),
        )  # fmt: skip
    except Declined:
        request.state.fast_declined = True
        return None  # the general path looks again: the refusal (409), not found (404) or the replay
    wake_chainer(settings)
    if idem:
        await after_write(settings, now)
    return JSONResponse(_coupon_out(moved).model_dump(mode="json"), status_code=200)


@router.post("/coupons/{coupon_id}/claim", response_model=CouponOut, tags=["coupons"])
async def claim_coupon(
    coupon_id: CouponId, request: Request, principal: CouponWriter, idempotency_key: IdemKey = None
) -> JSONResponse:
    """Claim a granted coupon (it becomes active once it takes effect)."""
    if principal.role == "supplier":
        raise Forbidden("a supplier cannot claim coupons for customers")
    return await _move(request, principal, coupon_id, "claim", idempotency_key)


@router.post("/coupons/{coupon_id}/redeem", response_model=CouponOut, tags=["coupons"])
async def redeem_coupon(
    coupon_id: CouponId, request: Request, principal: CouponWriter, idempotency_key: IdemKey = None
) -> JSONResponse:
    """Redeem an active coupon, exactly once: a second redemption is refused with 409."""
    return await _move(request, principal, coupon_id, "redeem", idempotency_key)


# ---------------------------------------------------------------------------------------------- points

CustomerId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,32}$")]


@router.get("/points/{customer_id}", response_model=PointsOut, tags=["points"])
def points(
    customer_id: CustomerId,
    request: Request,
    principal: Annotated[Principal, Depends(require("points:read"))],
) -> PointsOut:
    """A customer's points balance and latest postings."""
    with unit_of_work(settings_of(request)) as session:
        _visible_customer(session, principal, customer_id)
        balance = ledger.balance(session, customer_id)
        rows = [
            PostingOut(
                posting_id=p.id,
                customer_id=p.customer_id,
                kind=p.kind,
                direction=p.direction,
                amount=p.amount,
                created_at=p.created_at,
            )  # fmt: skip
            for p in ledger.postings(session, customer_id)
        ]
    return PointsOut(customer_id=customer_id, balance=balance, postings=rows)


@router.post("/points/{customer_id}/redeem", response_model=PointsOut, tags=["points"])
def redeem_points(
    customer_id: CustomerId,
    body: PointsRedeem,
    request: Request,
    principal: Annotated[Principal, Depends(require("points:write"))],
    idempotency_key: IdemKey = None,
) -> JSONResponse:
    """Spend points (refused with 409 beyond the balance); the ledger key defaults to the Idempotency-Key."""
    now = now_of(request)
    key = body.key or (
        f"api:{principal.actor}:{idempotency_key}" if idempotency_key else secrets.token_hex(16)
    )

    def write(session: Session) -> tuple[int, PointsOut]:
        _visible_customer(session, principal, customer_id)
        result = ledger.spend(session, customer_id=customer_id, amount=body.amount, key=f"api:{key}", now=now,
                              reference=body.reference or f"api redeem by {principal.actor}")  # fmt: skip
        posting = PostingOut(posting_id=result.posting_id, customer_id=customer_id, kind=result.kind,
                             direction=result.direction, amount=result.amount, created_at=now,
                             duplicate=result.duplicate)  # fmt: skip
        return 200, PointsOut(customer_id=customer_id, balance=ledger.balance(session, customer_id),
                              postings=[posting])  # fmt: skip

    return run_write(
        settings_of(request), actor=principal.actor, key=idempotency_key, method="POST",
        path=request.url.path, payload=body, now=now, write=write,
    )  # fmt: skip


# ------------------------------------------------------------------------------------ on the fast lane

_COUPONS_PATH = "/api/v1/coupons"
_MOVE_PATH = re.compile(r"^/api/v1/coupons/([0-9]{1,19})/(claim|redeem)$")


def _move_parts(path: str) -> tuple[str, ...] | None:
    m = _MOVE_PATH.match(path)
    return (m[1], m[2]) if m is not None and 1 <= int(m[1]) <= MAX_COUPON_ID else None


async def _lane_issue(
    request: Request, principal: Principal, _parts: tuple[str, ...], body: BaseModel | None, key: str | None
) -> JSONResponse | None:
    if not isinstance(body, CouponIssue):  # the lane validated it as one
        return None
    return await fast_issue(request, principal, body, key)


async def _lane_move(
    request: Request, principal: Principal, parts: tuple[str, ...], _body: BaseModel | None, key: str | None
) -> JSONResponse | None:
    return await fast_move(request, principal, int(parts[0]), parts[1], key)


# a supplier's user may redeem its coupons, never issue or claim: those go to the endpoints, which refuse
fastlane.register(
    fastlane.FastRoute(
        name="coupons.issue",
        match=lambda path: () if path == _COUPONS_PATH else None,
        permission="coupons:write",
        allows=lambda principal, _parts: principal.role != "supplier",
        body=CouponIssue,
        serve=_lane_issue,
    )
)
fastlane.register(
    fastlane.FastRoute(
        name="coupons.move",
        match=_move_parts,
        permission="coupons:write",
        allows=lambda principal, parts: not (principal.role == "supplier" and parts[1] == "claim"),
        body=None,
        serve=_lane_move,
    )
)
