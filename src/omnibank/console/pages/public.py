"""Customer-facing pages (mobile first, no sign-in): a benefit's page — what it is, how to use it, its
redemption steps and validity, and the claim button — and 长辈版 (elder mode).

A page knows its customer only through a signed link (``?k=<token>``, :mod:`omnibank.console.links`):
with one, the customer may claim the benefit, and a customer aged 60 or more sees elder mode unless they
switched it off (the ``ob_elder`` cookie, a year). No page shows anything personal: not the name, not the
phone, not the age. Elder mode: large type, AAA contrast, large touch targets, one action per screen
(claiming is its own screen, then the guide, a step a screen, each with a picture), no small print and nothing
that times out.

The claim POST carries a double-submit CSRF token (a random cookie and the same value in a hidden field):
there is no staff session to bind it to."""

from __future__ import annotations

import hmac
import re
import secrets
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from omnibank.api.auth import client_ip, now_of, settings_of
from omnibank.benefits.schemas import CouponRead
from omnibank.benefits.self_service import (
    BenefitView,
    NotOffered,
    Visit,
    claim_benefit,
    read_visit,
)
from omnibank.console.i18n import N_
from omnibank.console.labels import BENEFIT_TYPES as TYPES
from omnibank.console.links import read_link_token
from omnibank.console.web import redirect, render, speaker
from omnibank.db import unit_of_work

router = APIRouter()
PUBLIC = "/c"
ELDER_COOKIE = "ob_elder"
CSRF_COOKIE = "ob_pcsrf"
CSRF_FIELD = "csrf"
_BENEFIT_ID = r"^[A-Za-z0-9_.:-]{1,64}$"
_YEAR = 365 * 86400


# The guide's pictures (static/public/*.svg): a catalogue step is shown with the first picture whose words it
# contains (the catalogue is written in Chinese), else the plain phone.
PICTURES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (
        "cashier-scan",
        ("收银", "扫码", "扫描", "出示", "核销", "门店"),
        N_("A cashier scans the code on a phone"),
    ),
    ("coupon-code", ("券码", "优惠券", "选择", "使用", "抵扣", "兑换"), N_("A phone showing a coupon code")),
    ("claim", ("领取", "我的权益"), N_("A finger pressing the claim button in the bank's app")),
    ("delivery", ("包邮", "快递", "邮寄", "收货", "配送"), N_("A parcel delivered to the door")),
    ("open-app", ("打开", "登录", "App", "app", "小程序"), N_("A phone opening an app")),
)
PHONE = ("phone", N_("A phone"))


# ------------------------------------------------------------------------------------------------ pages


def _elder(request: Request, visit: Visit | None) -> bool:
    """The switch's remembered choice, else on for a customer of 60 or more."""
    chosen = request.cookies.get(ELDER_COOKIE)
    if chosen in ("1", "0"):
        return chosen == "1"
    return bool(visit and visit.senior)


def _guide(steps: tuple[str, ...]) -> list[dict[str, str]]:
    guide = []
    for step in steps:
        name, alt = next(((n, a) for n, words, a in PICTURES if any(w in step for w in words)), PHONE)
        guide.append({"text": step, "picture": f"public/{name}.svg", "alt": alt})
    return guide


def _worth(request: Request, benefit: BenefitView) -> tuple[str, dict[str, Any]]:
    say = speaker(request)
    if benefit.type == "points" and benefit.points:
        return N_("%(n)s points"), {"n": say.number(benefit.points)}
    if benefit.discount_rate is not None and benefit.discount_rate < 1:
        return N_("%(off)s off"), {"off": say.percent(1 - benefit.discount_rate, 0)}
    if benefit.face_value_fen > 0:
        return N_("Worth %(money)s"), {"money": say.money(Decimal(benefit.face_value_fen) / 100)}
    return "", {}


def _context(request: Request, visit: Visit, token: str | None, **more: Any) -> dict[str, Any]:
    known = visit.customer_id is not None
    k = token if known else None
    worth, worth_values = _worth(request, visit.benefit)
    coupon = visit.coupon
    page = f"{PUBLIC}/benefits/{visit.benefit.id}"
    # where the switches come back to: this page (the benefit's, after a POST), with a valid token only
    kept = {"k": k} if k else {}
    if "step" in request.query_params:
        kept["step"] = request.query_params["step"]
    here = (page if request.method == "POST" else request.url.path) + (f"?{urlencode(kept)}" if kept else "")
    return {
        "here": here,
        "page": page,
        "benefit": visit.benefit,
        "type_label": TYPES.get(visit.benefit.type, visit.benefit.type),
        "worth": worth,
        "worth_values": worth_values,
        "known": known,
        "k": k,
        "kq": f"?k={quote(k)}" if k else "",
        "coupon": coupon,
        "state": _state(coupon),
        "guide": _guide(visit.benefit.steps),
        "elder": _elder(request, visit),
        "public": PUBLIC,
        **more,
    }


def _state(coupon: CouponRead | None) -> str:
    """``offer`` (may claim), ``claimed`` (theirs to use), ``used``, ``ended``."""
    if coupon is None or coupon.status == "granted":
        return "offer"
    if coupon.status in ("claimed", "active"):
        return "claimed"
    return "used" if coupon.status == "redeemed" else "ended"


def _visit(request: Request, benefit_id: str, token: str | None) -> Visit | None:
    settings, now = settings_of(request), now_of(request)
    if not re.match(_BENEFIT_ID, benefit_id):
        return None
    customer_id = read_link_token(settings, token, now)
    try:
        with unit_of_work(settings) as session:
            return read_visit(session, benefit_id, customer_id, now, settings)
    except NotOffered:
        return None


def _not_found(request: Request) -> Response:
    return render(request, "public/notfound.html", {"elder": _elder(request, None), "public": PUBLIC},
                  status=404)  # fmt: skip


def _with_csrf(request: Request, response: Response, token: str) -> Response:
    if request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(CSRF_COOKIE, token, path=f"{PUBLIC}/", httponly=True, samesite="strict",
                            secure=settings_of(request).console_secure_cookies)  # fmt: skip
    return response


def _csrf_value(request: Request) -> str:
    current = request.cookies.get(CSRF_COOKIE, "")
    return current if re.fullmatch(r"[A-Za-z0-9_-]{32,64}", current) else secrets.token_urlsafe(32)


def _benefit_page(
    request: Request, visit: Visit, token: str | None, *, status: int = 200, **more: Any
) -> Response:
    csrf = _csrf_value(request)
    response = render(request, "public/benefit.html", _context(request, visit, token, csrf=csrf, **more),
                      status=status)  # fmt: skip
    return _with_csrf(request, response, csrf)


@router.get(PUBLIC + "/benefits/{benefit_id}")
def benefit_page(request: Request, benefit_id: str, k: str | None = None) -> Response:
    visit = _visit(request, benefit_id, k)
    if visit is None:
        return _not_found(request)
    return _benefit_page(request, visit, k)


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return origin != "null" and origin.split("://", 1)[-1] == request.headers.get("host", "")


@router.post(PUBLIC + "/benefits/{benefit_id}/claim")
def claim(
    request: Request,
    benefit_id: str,
    k: Annotated[str, Form(max_length=300)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    visit = _visit(request, benefit_id, k)
    if visit is None:
        return _not_found(request)
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected.encode(), csrf.encode()) or not _same_origin(request):
        return _benefit_page(request, visit, k, status=403, notice=N_(
            "Your request could not be checked. Please press the button again."))  # fmt: skip
    if visit.customer_id is None:
        return _benefit_page(request, visit, k, status=403)
    settings, now = settings_of(request), now_of(request)
    with unit_of_work(settings) as session:
        coupon, refused = claim_benefit(session, visit.benefit.id, visit.customer_id, now=now,
                                        settings=settings, source=f"public:{client_ip(request)}")  # fmt: skip
    if coupon is None:
        message = N_("Sorry, this benefit has all been claimed.") if refused == "out_of_stock" else N_(
            "Sorry, this benefit cannot be claimed now.")  # fmt: skip
        return _benefit_page(request, visit, k, status=409, notice=message, refused=True)
    return redirect(f"{PUBLIC}/benefits/{visit.benefit.id}/claimed?k={quote(k)}")


@router.get(PUBLIC + "/benefits/{benefit_id}/claimed")
def claimed(request: Request, benefit_id: str, k: str | None = None) -> Response:
    """The confirmation: the benefit is theirs, until when, and the one way on (the guide)."""
    visit = _visit(request, benefit_id, k)
    if visit is None:
        return _not_found(request)
    if visit.customer_id is None or _state(visit.coupon) == "offer":
        return redirect(f"{PUBLIC}/benefits/{visit.benefit.id}" + (f"?k={quote(k)}" if k else ""))
    return render(request, "public/claimed.html", _context(request, visit, k))


@router.get(PUBLIC + "/benefits/{benefit_id}/guide")
def guide(request: Request, benefit_id: str, k: str | None = None, step: int = 1) -> Response:
    """How to use it, with a picture a step: in elder mode one step a screen, else every step at once."""
    visit = _visit(request, benefit_id, k)
    if visit is None:
        return _not_found(request)
    context = _context(request, visit, k)
    total = len(context["guide"])
    context["step"] = min(max(step, 1), max(total, 1))
    context["total"] = total
    return render(request, "public/guide.html", context)


@router.get(PUBLIC + "/elder/{choice}")
def switch_elder(request: Request, choice: str, next: str = PUBLIC + "/") -> Response:  # noqa: A002
    """Switch elder mode on or off (remembered a year) and go back to the page (a /c/ page only)."""
    target = (
        next if next.startswith(PUBLIC + "/") and not next.startswith("//") and "\\" not in next else "/c/"
    )
    response = redirect(target)
    if choice in ("on", "off"):
        response.set_cookie(ELDER_COOKIE, "1" if choice == "on" else "0", path="/", max_age=_YEAR,
                            samesite="lax", secure=settings_of(request).console_secure_cookies)  # fmt: skip
    return response
