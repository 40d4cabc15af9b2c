"""Staff invite codes (员工邀请码): what the codes brought in over a period at one level of the org tree, with
a chart, a leaderboard and the refused bindings by reason; the signed-in member of staff's own code, the
customers it bound (masked; the read audited) and a form that makes a share link; and, for managers, the
staff within reach and their codes.

Everything reads through :mod:`omnibank.invites.views`, :mod:`omnibank.invites.stats` and the public
functions of :mod:`omnibank.invites.share`, scoped by the one reach rule (``views.reach_of``): an RM sees
their own code's figures, a branch manager their subtree, head-office roles the bank. Needs
``customers:read``, as the API's /invites."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.orm import Session

from omnibank.api.auth import Principal, client_ip, now_of, settings_of
from omnibank.api.errors import Forbidden
from omnibank.config import Settings
from omnibank.console.i18n import N_, Speaker
from omnibank.console.labels import CHANNELS
from omnibank.console.web import CONSOLE, needs, redirect, render, speaker
from omnibank.customers.values import EVENT_CHANNELS
from omnibank.db import unit_of_work
from omnibank.errors import InputRefused
from omnibank.invites import codes, share, stats, views
from omnibank.invites.models import REFUSAL_REASONS, TARGET_KINDS, ShareLink
from omnibank.leads.views import staff_of
from omnibank.security import get_cipher

router = APIRouter(prefix=CONSOLE)
Reader = Annotated[Principal, Depends(needs("customers:read"))]
Level = Literal["branch", "subbranch", "team", "staff"]
Metric = Literal["invited", "participated", "converted", "amount"]
BOUND_SHOWN = 100  # customers on "my invite code"
TOP = 10

LEVELS: dict[str, str] = {
    "branch": N_("Branch office"),
    "subbranch": N_("Sub-branch"),
    "team": N_("Team"),
    "staff": N_("Member of staff"),
}
METRICS: dict[str, str] = {
    "invited": N_("Invited"),
    "participated": N_("Took part"),
    "converted": N_("Converted"),
    "amount": N_("Converted amount"),
}
REFUSALS: dict[str, str] = {
    "unknown_code": N_("Unknown code"),
    "revoked_code": N_("Code revoked"),
    "self_referral": N_("Own referral"),
    "already_bound": N_("Bound to someone else"),
    "outside_window": N_("Outside the window"),
}
TARGETS: dict[str, str] = {
    "product": N_("Product"),
    "campaign": N_("Campaign"),
    "benefit": N_("Benefit"),
    "scene": N_("Partner scene"),
    "home": N_("The bank's home page"),
}
PRESETS: dict[str, str] = {
    "month": N_("This month"),
    "last_month": N_("Last month"),
    "year": N_("Last 12 months"),
}
assert set(REFUSALS) == set(REFUSAL_REASONS)
assert set(TARGETS) == set(TARGET_KINDS)


def _reach(session: Session, principal: Principal) -> stats.Reach:
    """The caller's reach: the one rule (``views.reach_of``), as the API derives it."""
    return views.reach_of(session, whole_bank=principal.whole_bank, org_id=principal.org_id,
                          role=principal.role, staff_id=principal.rm_id)  # fmt: skip


def _source(request: Request) -> str:
    return f"console:{client_ip(request)}"


def _today(request: Request) -> date:
    return now_of(request).astimezone(settings_of(request).tz).date()


def presets(today: date) -> dict[str, tuple[date, date]]:
    """The period picker's shortcuts, bank-local days: this month so far (the default), last month, and the
    last 12 months (today and the 364 days before)."""
    first = today.replace(day=1)
    last_month_end = first - timedelta(days=1)
    return {
        "month": (first, today),
        "last_month": (last_month_end.replace(day=1), last_month_end),
        "year": (today - timedelta(days=364), today),
    }


def _utc_bounds(settings: Settings, since: date, until: date) -> tuple[datetime, datetime]:
    """The period's bank-local days as UTC instants, ``since`` ≤ t < ``until``."""
    start = datetime.combine(since, time(0), settings.tz).astimezone(UTC)
    end = datetime.combine(until + timedelta(days=1), time(0), settings.tz).astimezone(UTC)
    return start, end


def _default_level(principal: Principal, reach: stats.Reach) -> Level:
    if reach.staff_id is not None:
        return "staff"
    return "branch" if principal.whole_bank else "subbranch"


def _unit_name(say: Speaker, node: stats.Node) -> str:
    return say.gettext("%(unit)s (its own staff)", unit=node.name) if node.direct else node.name


def _chart(say: Speaker, rows: list[stats.Node]) -> dict[str, Any]:
    invited, converted = say.gettext("Invited"), say.gettext("Converted")
    return {
        "tooltip": {"trigger": "axis"},
        "legend": {"data": [invited, converted]},
        "grid": {"left": 40, "right": 20, "bottom": 60, "containLabel": True},
        "xAxis": {"type": "category", "data": [_unit_name(say, n) for n in rows],
                  "axisLabel": {"rotate": 30}},
        "yAxis": {"type": "value", "minInterval": 1},
        "series": [
            {"name": invited, "type": "bar", "color": "#0b4f8a",
             "data": [n.figures.invited for n in rows]},
            {"name": converted, "type": "bar", "color": "#1d6b36",
             "data": [n.figures.converted for n in rows]},
        ],
    }  # fmt: skip


@router.get("/invites")
def invites_page(
    request: Request,
    principal: Reader,
    since: Annotated[date | None, Query(alias="from")] = None,
    until: Annotated[date | None, Query(alias="to")] = None,
    level: Annotated[Level | None, Query(alias="by")] = None,
    metric: Annotated[Metric, Query()] = "invited",
    preset: Annotated[Literal["month", "last_month", "year"] | None, Query()] = None,
) -> HTMLResponse:
    """邀请码业绩: the report of the period (default: this bank-local month so far) at one level, within the
    caller's reach."""
    settings, say, today = settings_of(request), speaker(request), _today(request)
    shortcuts = presets(today)
    first, last = shortcuts[preset or "month"]
    since = first if since is None or preset else since
    until = last if until is None or preset else until
    if since > until:
        raise InputRefused(f"from: {since} is after to: {until}")
    start, end = _utc_bounds(settings, since, until)
    with unit_of_work(settings) as session:
        reach = _reach(session, principal)
        by: Level = level or _default_level(principal, reach)
        rep = stats.report(session, settings, reach=reach, period=stats.Period(since, until),
                           as_of=min(until, today))  # fmt: skip
        refusals = stats.refusal_counts(session, reach, since=start, until=end)
    rows = rep.rows(by)
    return render(request, "invites/page.html", {
        "rep": rep, "rows": rows, "by": by, "metric": metric, "since": since, "until": until,
        "board": stats.leaderboard(rep, by=by, metric=metric, top=TOP),
        "refusals": [(reason, refusals.get(reason, 0)) for reason in REFUSAL_REASONS],
        "refused": sum(refusals.values()), "own_only": reach.staff_id is not None,
        "levels": LEVELS, "metrics": METRICS, "reasons": REFUSALS, "presets": PRESETS, "shortcuts": shortcuts,
        "unit_name": lambda n: _unit_name(say, n), "chart_option": _chart(say, rows),
        "is_manager": reach.staff_id is None,
    })  # fmt: skip


@dataclass(frozen=True)
class MadeLink:
    url: str
    kind: str
    target_id: str
    channel: str
    shares: int


def _made_link(session: Session, settings: Settings, token: str | None, staff_id: str) -> MadeLink | None:
    """The link just made (named by the redirect after the form), if it is the caller's own."""
    if not token or staff_id is None:
        return None
    link = session.get(ShareLink, token)
    if link is None or link.staff_id != staff_id:
        return None
    return MadeLink(share.link_url(settings, link.token), link.target_kind, link.target_id, link.channel,
                    int(link.shares))  # fmt: skip


@router.get("/invites/mine")
def my_code_page(
    request: Request,
    principal: Reader,
    link: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,16}$")] = None,
) -> HTMLResponse:
    """The signed-in member of staff's own code, the customers it bound (masked, the read audited), the
    share-link form and their links' figures."""
    settings, now = settings_of(request), now_of(request)
    with unit_of_work(settings) as session:
        reach = _reach(session, principal)
        staff_id = staff_of(session, principal.actor, principal.kind)
        code = codes.live_code(session, staff_id) if staff_id else None
        bound: list[views.BoundCustomer] = []
        links: list[share.ShareStat] = []
        made = None
        if staff_id:
            bound = views.bound_customers(session, get_cipher(settings), reach, actor=principal.actor,
                                          source=_source(request), staff_id=staff_id, limit=BOUND_SHOWN,
                                          now=now)  # fmt: skip
            links = share.stats(session, settings, by="target", staff_id=staff_id)
            made = _made_link(session, settings, link, staff_id)
    return render(request, "invites/mine.html", {
        "staff_id": staff_id, "code": code, "bound": bound, "links": links, "made": made,
        "targets": TARGETS, "channels": [(c, CHANNELS.get(c, c)) for c in EVENT_CHANNELS],
        "channel_names": CHANNELS,
        "default_channel": share.DEFAULT_CHANNEL, "shown": BOUND_SHOWN,
        "is_manager": reach.staff_id is None,
    })  # fmt: skip


@router.post("/invites/mine/links", response_model=None)
def make_share_link(
    request: Request,
    principal: Reader,
    kind: Annotated[str, Form(max_length=16)],
    channel: Annotated[str, Form(max_length=16)],
    target_id: Annotated[str, Form(max_length=64)] = "",
) -> RedirectResponse:
    """A share link of the caller's for the target and channel (the same link when asked again: it counts
    one more share); then back to the page, showing its URL."""
    settings = settings_of(request)
    target = kind.strip() if kind.strip() == "home" and not target_id.strip() else f"{kind}:{target_id}"
    kind, target_id = share.parse_target(target)
    with unit_of_work(settings) as session:
        staff_id = staff_of(session, principal.actor, principal.kind)
        if not staff_id:
            raise Forbidden("your account is not linked to a member of staff: no share links")
        made = share.make_link(session, staff_id=staff_id, kind=kind, target_id=target_id, channel=channel,
                               now=now_of(request), actor=principal.actor)  # fmt: skip
        token = made.token
    return redirect(f"{CONSOLE}/invites/mine?link={token}#made-link")


@dataclass(frozen=True)
class CodeCounts:
    staff: int
    live: int
    without: int
    left: int


@router.get("/invites/codes")
def codes_page(request: Request, principal: Reader) -> HTMLResponse:
    """Staff within the manager's reach and their codes (live, none, left; codes revoked so far)."""
    with unit_of_work(settings_of(request)) as session:
        reach = _reach(session, principal)
        if reach.staff_id is not None:
            raise Forbidden("the staff codes are for managers; your own code is under My invite code")
        rows = views.codes(session, reach)
    counts = CodeCounts(
        staff=len(rows),
        live=sum(1 for r in rows if r.code and r.left_at is None),
        without=sum(1 for r in rows if not r.code and r.left_at is None),
        left=sum(1 for r in rows if r.left_at is not None),
    )
    return render(request, "invites/codes.html", {"rows": rows, "counts": counts, "is_manager": True})
