"""/invites: staff invite codes, what they brought in (every level of the org tree) and leaderboards, the
customers a code bound (masked, audited) and refused bindings — each scoped to the caller: the whole bank, an
org subtree, or an RM's own code. Issuing, revoking and rotating codes take ``invites:write``.

Share links over HTTP: ``GET /s/{token}`` (public, ``public_router``: the redirect to the landing page,
recording the click) and, under /api/v1, ``POST /invites/share-links`` (make a link) and
``GET /invites/share-stats`` (``router``).

The redirect is the hot path (≥ 2,000/s on two cores, ``benchmarks/bench_share.py``): an async endpoint that
answers from the process's cache of landings and hands its click to the process's buffer
(:class:`omnibank.invites.share.ClickRecorder`); only a link not cached reads the store (in a worker thread).
It is rate limited per client address (``OMNIBANK_SHARE_RATE_PER_MINUTE``) and its answers are never cached
by browsers or proxies (a click must reach us to count)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from omnibank.api.auth import Principal, audit_source, authenticate, client_ip, now_of, require, settings_of
from omnibank.api.errors import ERROR_RESPONSES, Forbidden
from omnibank.api.idempotency import run_write
from omnibank.api.ratelimit import TokenBucket
from omnibank.config import Settings
from omnibank.console.web import render
from omnibank.customers.values import EVENT_CHANNELS
from omnibank.db import unit_of_work
from omnibank.errors import InputRefused, NotFound
from omnibank.invites import codes, share, stats, views
from omnibank.invites.models import REFUSAL_REASONS
from omnibank.invites.share import Click, ClickRecorder, Landing, LandingCache
from omnibank.kit.clock import local_today
from omnibank.kit.crypto import FieldCipher
from omnibank.orgs import repository as orgs_repo
from omnibank.orgs.models import Staff
from omnibank.security import get_cipher

router = APIRouter(prefix="/invites", tags=["invites"], responses=ERROR_RESPONSES)
Reader = Annotated[Principal, Depends(require("customers:read"))]
Writer = Annotated[Principal, Depends(require("invites:write"))]
_ID = r"^[A-Za-z0-9_-]{1,32}$"
StaffId = Annotated[str, Path(pattern=_ID)]
OrgQ = Annotated[str | None, Query(pattern=_ID, description="Only this org's subtree (within yours).")]
Levels = Literal["staff", "team", "subbranch", "branch"]


def reach(session: Session, principal: Principal, org: str | None = None) -> stats.Reach:
    """The caller's reach (the one rule, :func:`omnibank.invites.views.reach_of`), narrowed to ``org``."""
    mine = views.reach_of(session, whole_bank=principal.whole_bank, org_id=principal.org_id,
                          role=principal.role, staff_id=principal.rm_id)  # fmt: skip
    return stats.narrowed(session, mine, org)


class CodeOut(BaseModel):
    staff_id: str
    org_id: str
    role: str
    code: str | None = Field(description="The live code; empty: none yet, or the member of staff left.")
    issued_at: datetime | None
    revoked: int = Field(description="Codes of theirs revoked so far.")
    left_at: datetime | None


@router.get("/codes", response_model=list[CodeOut])
def list_codes(request: Request, principal: Reader, org: OrgQ = None) -> list[CodeOut]:
    """Staff within reach and their live codes."""
    with unit_of_work(settings_of(request)) as session:
        rows = views.codes(session, reach(session, principal, org))
    return [CodeOut(**vars(r)) for r in rows]


class IssueOut(BaseModel):
    issued: int
    kept: int


@router.post("/codes/issue", response_model=IssueOut)
def issue_codes(request: Request, principal: Writer, org: OrgQ = None) -> IssueOut:
    """A code for every active member of staff (in ``org``'s subtree) who has none; others keep theirs."""
    with unit_of_work(settings_of(request)) as session:
        r = codes.issue(session, org_id=org, now=now_of(request), actor=principal.actor)
    return IssueOut(issued=r.issued, kept=r.kept)


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=200)


class ChangedOut(BaseModel):
    staff_id: str
    code: str = Field(description="The live code now (after a rotation) or the code revoked.")
    revoked: str | None = Field(description="The code that stopped binding new customers.")


@router.post("/codes/{staff_id}/revoke", response_model=ChangedOut)
def revoke_code(staff_id: StaffId, body: RevokeIn, request: Request, principal: Writer) -> ChangedOut:
    """Revoke the member of staff's code: no new customer binds through it; those bound stay."""
    with unit_of_work(settings_of(request)) as session:
        c = codes.revoke(session, staff_id, reason=body.reason, now=now_of(request), actor=principal.actor)
    return ChangedOut(staff_id=staff_id, code=c.code, revoked=c.code)


@router.post("/codes/{staff_id}/rotate", response_model=ChangedOut)
def rotate_code(staff_id: StaffId, request: Request, principal: Writer) -> ChangedOut:
    """A new code; the old one stops binding new customers."""
    with unit_of_work(settings_of(request)) as session:
        old, new = codes.rotate(session, staff_id, now=now_of(request), actor=principal.actor)
    return ChangedOut(staff_id=staff_id, code=new.code, revoked=old.code if old else None)


class FiguresOut(BaseModel):
    invited: int
    participated: int
    converted: int
    conversion_rate: Decimal = Field(description="Converted per invited.")
    amount: Decimal = Field(description="CNY: card spend within `days` of binding.")


class UnitOut(BaseModel):
    rank: int | None = None
    unit: str = Field(description="An org id, a staff id, or `<org>*` for the staff directly in that org.")
    level: str
    name: str
    code: str | None
    figures: FiguresOut


class StatsOut(BaseModel):
    by: str
    since: date | None
    until: date | None
    campaign: str | None
    convert: str
    days: int
    rows: list[UnitOut]
    total: FiguresOut


def _figures(f: stats.Figures) -> FiguresOut:
    return FiguresOut(invited=f.invited, participated=f.participated, converted=f.converted,
                      conversion_rate=f.conversion_rate, amount=f.amount)  # fmt: skip


def _unit(n: stats.Node, rank: int | None = None) -> UnitOut:
    return UnitOut(
        rank=rank, unit=n.key, level=n.level, name=n.name, code=n.code, figures=_figures(n.figures)
    )


def _report(request: Request, principal: Principal, *, org: str | None, since: date | None,
            until: date | None, **kw: object) -> stats.Report:  # fmt: skip
    settings = settings_of(request)
    today = local_today(settings.tz, lambda: now_of(request))
    period = stats.Period(since, until)
    with unit_of_work(settings) as session:
        return stats.report(session, settings, reach=reach(session, principal, org), period=period,
                            as_of=min(until, today) if until else today, **kw)  # type: ignore[arg-type]  # fmt: skip


@router.get("/stats", response_model=StatsOut)
def invite_stats(
    request: Request,
    principal: Reader,
    by: Annotated[Levels, Query()] = "branch",
    org: OrgQ = None,
    campaign: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = None,
    since: Annotated[date | None, Query(alias="from")] = None,
    until: Annotated[date | None, Query(alias="to")] = None,
    days: Annotated[int, Query(ge=1, le=3650)] = stats.DEFAULT_DAYS,
) -> StatsOut:
    """What the codes brought in per unit (customers bound from `from` to `to`, bank-local days): invited,
    participated (a campaign grant after binding), converted (a card issued), amount. Rows add up to the
    total at every level."""
    rep = _report(request, principal, org=org, since=since, until=until, campaign=campaign, days=days)
    return StatsOut(by=by, since=since, until=until, campaign=campaign, convert=rep.convert, days=days,
                    rows=[_unit(n) for n in rep.rows(by)], total=_figures(rep.total))  # fmt: skip


@router.get("/leaderboard", response_model=list[UnitOut])
def invite_leaderboard(
    request: Request,
    principal: Reader,
    by: Annotated[Levels, Query()] = "branch",
    metric: Annotated[Literal["invited", "participated", "converted", "amount"], Query()] = "invited",
    top: Annotated[int, Query(ge=1, le=1000)] = 10,
    org: OrgQ = None,
    since: Annotated[date | None, Query(alias="from")] = None,
    until: Annotated[date | None, Query(alias="to")] = None,
) -> list[UnitOut]:
    """The top units by a metric."""
    rep = _report(request, principal, org=org, since=since, until=until)
    return [_unit(n, rank) for rank, n in stats.leaderboard(rep, by=by, metric=metric, top=top)]


class BoundOut(BaseModel):
    customer_id: str
    name: str = Field(description="Masked.")
    phone: str = Field(description="Masked.")
    staff_id: str
    code: str
    channel: str | None
    bound_at: datetime


@router.get("/customers", response_model=list[BoundOut])
def bound_customers(
    request: Request,
    principal: Reader,
    staff: Annotated[str | None, Query(pattern=_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[BoundOut]:
    """Customers bound within reach (of one member of staff), latest first. Masked; audited."""
    settings = settings_of(request)
    with unit_of_work(settings) as session:
        mine = reach(session, principal)
        rows = views.bound_customers(session, get_cipher(settings), mine, actor=principal.actor,
                                     source=audit_source(request), staff_id=staff, limit=limit,
                                     now=now_of(request))  # fmt: skip
    return [BoundOut(**vars(r)) for r in rows]


class RefusalOut(BaseModel):
    event_id: str
    customer_id: str
    code: str
    staff_id: str | None
    reason: str
    channel: str | None
    at: datetime


class RefusalsOut(BaseModel):
    counts: dict[str, int]
    items: list[RefusalOut]


@router.get("/refusals", response_model=RefusalsOut)
def refusals(
    request: Request,
    principal: Reader,
    reason: Annotated[Literal[REFUSAL_REASONS] | None, Query()] = None,  # type: ignore[valid-type]
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> RefusalsOut:
    """Coded events that did not bind, latest first, and counts by reason."""
    with unit_of_work(settings_of(request)) as session:
        mine = reach(session, principal)
        items = views.refusals(session, mine, actor=principal.actor, source=audit_source(request),
                               reason=reason, limit=limit, now=now_of(request))  # fmt: skip
        counts = stats.refusal_counts(session, mine)
    return RefusalsOut(counts=counts, items=[RefusalOut(**vars(r)) for r in items])


# -- share links ------------------------------------------------------------------------------------

public_router = APIRouter(tags=["share"])
Caller = Annotated[Principal, Depends(authenticate)]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
#: who may make a link for any member of staff (admins and campaign managers hold it; integrations may)
ANYONE_PERMISSION = "campaigns:write"
_TOO_MANY = (
    "<!doctype html><meta charset=utf-8><title>429</title><p>请求过于频繁，请稍后再试。"
    "Too many requests: please try again shortly.</p>"
)
_NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


@dataclass
class ShareState:
    """A server process's landings cache, click buffer and per-address rate limit."""

    cache: LandingCache
    recorder: ClickRecorder
    limiter: TokenBucket
    settings: Settings
    _cipher: tuple[float, FieldCipher] | None = None

    def device(self, *, user_agent: str, address: str) -> str:
        """:func:`share.device_of` with the key ring looked up once a minute (a lookup stats the key file)."""
        cached = self._cipher
        if cached is None or time.monotonic() >= cached[0]:
            cached = self._cipher = (time.monotonic() + 60, get_cipher(self.settings))
        return share.device_of(user_agent=user_agent, address=address, cipher=cached[1])

    @classmethod
    def of(cls, settings: Settings) -> ShareState:
        return cls(
            cache=LandingCache(settings.share_cache_seconds),
            recorder=ClickRecorder(settings, interval=settings.share_flush_seconds),
            limiter=TokenBucket(settings.share_rate_per_minute),
            settings=settings,
        )


def share_state(app: Any) -> ShareState:
    state: ShareState | None = getattr(app.state, "share", None)
    if state is None:
        state = app.state.share = ShareState.of(app.state.settings)
    return state


def install(app: FastAPI) -> None:
    """The public ``/s/`` route on ``app`` (no API prefix), its state, and the writing of the clicks still
    held when the server stops."""
    app.include_router(public_router)
    share_state(app)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as value:
            try:
                yield value
            finally:
                await run_in_threadpool(share_state(a).recorder.close)

    app.router.lifespan_context = lifespan


# ------------------------------------------------------------------------------------------------- /s/


def _resolve(settings: Settings, token: str) -> Landing | None:
    with unit_of_work(settings) as session:
        return share.resolve(session, settings, token)


def _not_found(request: Request) -> HTMLResponse:
    say_title = "链接不存在 · Not found"
    response = render(request, "public/error.html", {"title": say_title, "status": 404, "elder": False,
                                                      "public": "/c"}, status=404)  # fmt: skip
    response.headers.update(_NO_STORE)
    return response


@public_router.get(
    "/s/{token}",
    response_class=RedirectResponse,
    status_code=302,
    summary="Follow a share link",
    responses={
        302: {"description": "To the landing page"},
        404: {"description": "No such link (a page)"},
        429: {"description": "Too many requests from this address"},
    },  # fmt: skip
)
async def follow(request: Request, token: str) -> Response:
    """Redirect to the link's landing page, with ``invite_code`` (if the staff member's code is live),
    ``share_token`` and ``channel`` in its query; count the click (once a minute per device)."""
    settings = settings_of(request)
    state = share_state(request.app)
    address = client_ip(request)
    wait = state.limiter.take(address)
    if wait is not None:
        return HTMLResponse(_TOO_MANY, status_code=429, headers={"Retry-After": str(wait), **_NO_STORE})
    landing = state.cache.get(token)
    if landing is None:
        landing = await run_in_threadpool(_resolve, settings, token)
        if landing is None:
            return _not_found(request)
        state.cache.put(landing)
    device = state.device(user_agent=request.headers.get("user-agent", ""), address=address)
    click = Click(landing.token, landing.staff_id, landing.channel, device, now_of(request))
    if state.recorder.interval > 0:
        state.recorder.record(click)
    else:  # written at once: not on the event loop
        await run_in_threadpool(state.recorder.record, click)
    return RedirectResponse(landing.url, status_code=302, headers=_NO_STORE)


@public_router.get("/s/{rest:path}", include_in_schema=False)
@public_router.get("/s", include_in_schema=False)
async def no_such_link(request: Request) -> Response:
    """Anything else under /s/ (a token with a slash, none at all): the same page as an unknown token."""
    return _not_found(request)


# ------------------------------------------------------------------------------------------- /api/v1


class ShareLinkCreate(BaseModel):
    staff_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$", examples=["E00001"])
    target: str = Field(max_length=90, description="KIND:ID, e.g. benefit:luckin_coffee, scene:car_loan")
    channel: str = Field(default=share.DEFAULT_CHANNEL, description=f"One of {', '.join(EVENT_CHANNELS)}.")


class ShareLinkRead(BaseModel):
    token: str
    url: str = Field(description="The link to hand out: <OMNIBANK_PUBLIC_URL>/s/<token>.")
    staff_id: str
    target_kind: str
    target_id: str
    channel: str
    shares: int = Field(description="Times the link was handed out (made again, or a poster made).")
    created_at: datetime


class ShareStatRead(BaseModel):
    staff_id: str | None
    target_kind: str | None
    target_id: str | None
    links: int
    shares: int
    clicks: int
    unique_clickers: int
    bindings: int
    conversions: int
    conversion_rate: Decimal = Field(description="conversions ÷ unique clickers (0 when nobody clicked).")


class ShareStatList(BaseModel):
    by: str
    items: list[ShareStatRead]


def _may_share_for(principal: Principal, staff_id: str) -> None:
    if principal.can(ANYONE_PERMISSION) or (principal.rm_id is not None and principal.rm_id == staff_id):
        return
    raise Forbidden(f"you may make share links for yourself only (not {staff_id})",
                    details={"needs": ANYONE_PERMISSION})  # fmt: skip


@router.post("/share-links", status_code=200, response_model=ShareLinkRead)
def make_share_link(request: Request, body: ShareLinkCreate, principal: Caller,
                    idempotency_key: IdemKey = None) -> Response:  # fmt: skip
    """A staff member's share link to a target for a channel (made once; each call counts a share).
    Staff make their own; admins and campaign managers make anyone's."""
    _may_share_for(principal, body.staff_id)
    settings = settings_of(request)
    now = now_of(request)
    kind, target_id = share.parse_target(body.target)

    def write(session: Session) -> tuple[int, BaseModel]:
        link = share.make_link(session, staff_id=body.staff_id, kind=kind, target_id=target_id,
                               channel=body.channel, now=now, actor=principal.actor)  # fmt: skip
        return 200, ShareLinkRead(
            token=link.token, url=share.link_url(settings, link.token), staff_id=link.staff_id,
            target_kind=link.target_kind, target_id=link.target_id, channel=link.channel, shares=link.shares,
            created_at=link.created_at,
        )  # fmt: skip

    return run_write(settings, actor=principal.actor, key=idempotency_key, method="POST",
                     path=request.url.path, payload=body, now=now, write=write)  # fmt: skip


def _bounds(
    settings: Settings, start: date | None, end: date | None
) -> tuple[datetime | None, datetime | None]:
    """Bank-local days ``start``..``end`` (both included) as instants ``since`` ≤ t < ``until``."""
    if start is not None and end is not None and end < start:
        raise InputRefused("to: before from")
    since = datetime.combine(start, clock_time(0), tzinfo=settings.tz) if start else None
    until = datetime.combine(end + timedelta(days=1), clock_time(0), tzinfo=settings.tz) if end else None
    return since, until


@router.get("/share-stats", response_model=ShareStatList)
def share_stats(
    request: Request,
    principal: Caller,
    by: Literal["staff", "target"] = "staff",
    org: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,32}$")] = None,
    staff_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,32}$")] = None,
    start: Annotated[date | None, Query(alias="from", description="First bank-local day.")] = None,
    end: Annotated[date | None, Query(alias="to", description="Last bank-local day (included).")] = None,
) -> ShareStatList:
    """Shares, clicks, unique clickers, bindings and conversions of the share links, per staff member or per
    target: the caller's org subtree (an RM: their own links; admins and campaign managers: the bank)."""
    settings = settings_of(request)
    since, until = _bounds(settings, start, end)
    with unit_of_work(settings) as session:
        if principal.rm_id is not None:
            if staff_id not in (None, principal.rm_id):
                raise Forbidden("an RM sees the figures of their own links only")
            staff_id = principal.rm_id
        elif not principal.whole_bank:
            if principal.org_id is None or principal.role in ("supplier", "auditor"):
                raise Forbidden("share figures are for staff of an org")
            mine = orgs_repo.subtree_ids(session, principal.org_id)
            if org is not None and org not in mine:
                raise NotFound(f"no org {org} (see omnibank org tree)")
            org = org or principal.org_id
            if staff_id is not None:
                member = session.get(Staff, staff_id)
                if member is None or member.org_id not in mine:
                    raise NotFound(f"no staff member {staff_id}")
        rows = share.stats(session, settings, by=by, org_id=org, staff_id=staff_id, since=since, until=until)
    items = [ShareStatRead(**r.__dict__, conversion_rate=r.conversion_rate) for r in rows]
    return ShareStatList(by=by, items=items)
