"""What every console page shares: who is signed in (the API's own accounts, roles, scoping, rate limits and
lock-out, carried in cookies), CSRF protection, the language, and rendering a template.

A console session is an API session: sign-in issues the same access and refresh tokens, kept in HttpOnly,
``Secure``, ``SameSite=Strict`` cookies scoped to ``/console``. Each request authenticates the access token
exactly as the API does (``omnibank.api.auth.authenticate``: the session is read on every request, so a
sign-out or lock applies at once). An access token that has expired is renewed with the refresh token only
within ``console_idle_minutes`` of its expiry and ``console_session_hours`` of sign-in: a console left alone
signs out by itself.

Every form and every htmx request carries a CSRF token (a hidden field or the ``X-CSRF-Token`` header): an
HMAC of the session id under a key derived from the data home's keys, checked on every unsafe request."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import jwt
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from omnibank.api.auth import Principal, authenticate, now_of, settings_of
from omnibank.api.errors import Forbidden, Unauthorized
from omnibank.config import Settings
from omnibank.console.i18n import LANG_COOKIE, N_, Speaker, negotiate
from omnibank.db import unit_of_work
from omnibank.errors import AppError
from omnibank.users import service as users
from omnibank.users.models import RefreshToken, UserSession

CONSOLE = "/console"
ACCESS_COOKIE = "ob_access"
REFRESH_COOKIE = "ob_refresh"
PRE_CSRF_COOKIE = "ob_presign"  # the sign-in form's CSRF token, before there is a session
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
TEMPLATES = Path(__file__).parent / "templates"

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(("html",)),
    trim_blocks=True,
    lstrip_blocks=True,
    extensions=["jinja2.ext.i18n"],  # {% trans %} blocks; the callables come with each request's context
)
_env.policies["ext.i18n.trimmed"] = True


class SignInNeeded(Exception):
    """No live console session: the page answers with a redirect to the sign-in page."""

    def __init__(self, reason: str = ""):
        super().__init__(reason)
        self.reason = reason


def speaker(request: Request) -> Speaker:
    found: Speaker | None = getattr(request.state, "speaker", None)
    if found is None:
        lang = negotiate(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))
        found = request.state.speaker = Speaker(lang, settings_of(request).tz)
    return found


# ------------------------------------------------------------------------------------------------ CSRF


def _csrf_key(settings: Settings) -> bytes:
    return hashlib.sha256(b"omnibank/console/csrf/v1" + users.signing_key(settings)).digest()


def csrf_token(settings: Settings, session_id: str) -> str:
    return hmac.new(_csrf_key(settings), session_id.encode(), hashlib.sha256).hexdigest()


def _presented_csrf(request: Request, form: dict[str, Any] | None) -> str:
    return request.headers.get(CSRF_HEADER) or str((form or {}).get(CSRF_FIELD) or "")


def _same_origin(request: Request) -> bool:
    """A browser's Origin (sent with every POST) names this host; no Origin: not a browser's cross-site
    request (SameSite=Strict cookies and the token still apply)."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


async def check_csrf(request: Request, principal: Principal) -> None:
    """Refuse an unsafe request without this session's CSRF token (403)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    form = dict(await request.form()) if _is_form(request) else None
    expected = csrf_token(settings_of(request), principal.session_id or "")
    presented = _presented_csrf(request, form)
    if not _same_origin(request) or not hmac.compare_digest(presented, expected):
        raise Forbidden("the form is stale or came from another site: reload the page and try again",
                        code="csrf")  # fmt: skip


def _is_form(request: Request) -> bool:
    kind = request.headers.get("content-type", "")
    return kind.startswith("application/x-www-form-urlencoded") or kind.startswith("multipart/form-data")


# ---------------------------------------------------------------------------------------------- session


def set_session_cookies(response: Response, settings: Settings, access: str, refresh: str) -> None:
    secure = settings.console_secure_cookies
    for name, value in ((ACCESS_COOKIE, access), (REFRESH_COOKIE, refresh)):
        response.set_cookie(name, value, path=CONSOLE, httponly=True, secure=secure, samesite="strict")


def clear_session_cookies(response: Response, settings: Settings) -> None:
    for name in (ACCESS_COOKIE, REFRESH_COOKIE):
        response.delete_cookie(name, path=CONSOLE, httponly=True, secure=settings.console_secure_cookies,
                               samesite="strict")  # fmt: skip


def _renewable(token: str, settings: Settings, now: datetime) -> bool:
    """Whether an expired access token may be renewed: expired less than ``console_idle_minutes`` ago."""
    try:
        claims = jwt.decode(token, users.signing_key(settings), algorithms=["HS256"],
                            options={"verify_exp": False}, issuer=None)  # fmt: skip
    except jwt.PyJWTError:
        return False
    expired_at = datetime.fromtimestamp(int(claims.get("exp", 0)), UTC)
    return now - expired_at < timedelta(minutes=settings.console_idle_minutes)


def _renew(settings: Settings, refresh: str, now: datetime) -> users.TokenPair | None:
    """A new token pair for a console session still within its hours; None (and the session ended) past
    them."""
    with unit_of_work(settings) as session:
        row = session.get(UserSession, _family_of(session, refresh))
        if row is not None and now - row.created_at > timedelta(hours=settings.console_session_hours):
            users.logout(session, refresh, now=now)
            return None
        outcome = users.refresh_tokens(session, refresh, settings, now=now)
    return outcome.tokens


def _family_of(session: Session, refresh: str) -> str:
    family = session.scalar(
        select(RefreshToken.family).where(RefreshToken.token_hash == users.digest(refresh))
    )
    return str(family or "")


# A page and its htmx requests may find the access token expired at the same moment: one renewal per refresh
# token, whose answer the others reuse (presenting a used refresh token again would end the session).
_renewing = asyncio.Lock()
_renewed: dict[str, tuple[float, users.TokenPair]] = {}
_RENEWED_KEPT = 60.0  # seconds


async def _renew_once(settings: Settings, refresh: str, now: datetime) -> users.TokenPair | None:
    key = users.digest(refresh)
    async with _renewing:
        hit = _renewed.get(key)
        if hit is not None and time.monotonic() - hit[0] < _RENEWED_KEPT:
            return hit[1]
        pair = await run_in_threadpool(_renew, settings, refresh, now)
        for old in [k for k, (at, _) in _renewed.items() if time.monotonic() - at >= _RENEWED_KEPT]:
            _renewed.pop(old, None)
        if pair is not None:
            _renewed[key] = (time.monotonic(), pair)
        return pair


async def _signed_in(request: Request) -> Principal:
    settings, now = settings_of(request), now_of(request)
    access = request.cookies.get(ACCESS_COOKIE)
    refresh = request.cookies.get(REFRESH_COOKIE)
    if not access:
        raise SignInNeeded()
    try:
        return await authenticate(request, HTTPAuthorizationCredentials(scheme="Bearer", credentials=access))
    except Unauthorized as exc:
        if exc.code != "invalid_token" or not refresh or not _renewable(access, settings, now):
            raise SignInNeeded("expired") from None
    pair = await _renew_once(settings, refresh, now)
    if pair is None:
        raise SignInNeeded("expired")
    request.state.renewed = pair
    return await authenticate(
        request, HTTPAuthorizationCredentials(scheme="Bearer", credentials=pair.access_token)
    )


async def staff(request: Request) -> Principal:
    """The signed-in member of staff (a dependency of every console page), CSRF checked on unsafe
    requests."""
    principal = await _signed_in(request)
    await check_csrf(request, principal)
    request.state.principal = principal
    return principal


Staff = Annotated[Principal, Depends(staff)]


def needs(permission: str) -> Callable[..., Any]:
    """A dependency: the signed-in member of staff, who must hold ``permission`` (a 403 page if not)."""

    async def dependency(principal: Staff) -> Principal:
        if not principal.can(permission):
            raise Forbidden(f"this needs the permission {permission}", details={"needs": permission})
        return principal

    return dependency


# ---------------------------------------------------------------------------------------------- render

NAV: tuple[tuple[str, str, str | None], ...] = (
    # (path under /console, message id, permission needed: None = every signed-in user)
    ("", N_("Home"), None),
    ("/customers", N_("Customers"), "customers:read"),
    ("/segments", N_("Segments"), "segments:read"),
    ("/benefits", N_("Benefits"), "benefits:read"),
    ("/campaigns", N_("Campaigns"), "campaigns:read"),
    ("/journeys", N_("Journeys"), "campaigns:read"),
    ("/marketing", N_("Precision marketing"), "campaigns:read"),
    ("/leads", N_("Leads"), "leads:write"),
    ("/tickets", N_("Tickets"), "customers:read"),
    ("/cx", N_("Experience"), "customers:read"),
    ("/contact", N_("Contact"), "campaigns:read"),
    ("/audit", N_("Audit"), "audit:read"),
)
ROLES = {
    "admin": N_("Administrator"),
    "campaign_manager": N_("Campaign manager"),
    "branch_manager": N_("Branch manager"),
    "rm": N_("Relationship manager"),
    "wealth_manager": N_("Wealth manager"),
    "teller": N_("Teller"),
    "telemarketer": N_("Telemarketer"),
    "service_agent": N_("Service agent"),
    "supplier": N_("Supplier"),
    "auditor": N_("Auditor"),
}


def role_label(role: str | None) -> str:
    return ROLES.get(role or "", role or "")


def chart(chart_id: str, option: dict[str, Any], *, label: str = "", tall: bool = False) -> Markup:
    """An ECharts chart: a box the page's script draws ``option`` into (JSON data, not code), labelled for
    screen readers."""
    data = json.dumps(option, ensure_ascii=False, default=str).replace("</", "<\\/")
    return Markup(
        '<div class="chart{tall}" data-chart="{id}-data" role="img" aria-label="{label}"></div>'
        '<script type="application/json" id="{id}-data">{data}</script>'
    ).format(tall=" tall" if tall else "", id=chart_id, label=label, data=Markup(data))


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, *, status: int = 200
) -> HTMLResponse:
    """``template`` rendered in the request's language, with the signed-in user, the navigation and the
    CSRF token; cookies of a renewed session set on the answer."""
    say = speaker(request)
    principal: Principal | None = getattr(request.state, "principal", None)
    settings = settings_of(request)
    ctx: dict[str, Any] = {
        "request": request,
        "lang": say.lang,
        "html_lang": say.html_lang,
        "principal": principal,
        "csrf": csrf_token(settings, principal.session_id or "") if principal else "",
        "nav": [
            (CONSOLE + path, label)
            for path, label, need in NAV
            if principal is not None and (need is None or principal.can(need))
        ],  # fmt: skip
        "path": request.url.path,
        "here": _here(request),
        "console": CONSOLE,
        "role_label": role_label,
        "chart": chart,
        **say.jinja_globals(),
        **(context or {}),
    }
    html = _env.get_template(template).render(ctx)
    response = HTMLResponse(html, status_code=status)
    renewed: users.TokenPair | None = getattr(request.state, "renewed", None)
    if renewed is not None:
        set_session_cookies(response, settings, renewed.access_token, renewed.refresh_token)
    return response


def _here(request: Request) -> str:
    """This page's path and query, to come back to (after switching language or signing in)."""
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a console path, never another site."""
    if value and value.startswith(CONSOLE) and not value.startswith("//") and "\\" not in value:
        return value
    return CONSOLE


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def to_sign_in(request: Request, reason: str = "") -> Response:
    url = f"{CONSOLE}/signin?next={quote(_here(request))}" + (f"&reason={reason}" if reason else "")
    if request.headers.get("hx-request"):  # htmx follows HX-Redirect with a full page load
        return Response(status_code=204, headers={"HX-Redirect": url})
    return redirect(url)


def error_page(request: Request, exc: AppError) -> HTMLResponse:
    say = speaker(request)
    fallback = N_("Something went wrong")
    titles = {403: N_("Not allowed"), 404: N_("Not found"), 429: N_("Too many requests"),
              422: N_("Check the input")}  # fmt: skip
    context = {"title": say.gettext(titles.get(exc.status, fallback)), "message": exc.message,
               "status": exc.status}  # fmt: skip
    if request.headers.get("hx-request"):
        return render(request, "fragments/error.html", context, status=exc.status)
    if request.url.path.startswith("/c/"):  # a customer's page: theirs, in elder mode if they chose it
        elder = request.cookies.get("ob_elder") == "1"
        context.update(elder=elder, public="/c")
        return render(request, "public/error.html", context, status=exc.status)
    return render(request, "error.html", context, status=exc.status)


def new_presign_token() -> str:
    return secrets.token_urlsafe(24)
