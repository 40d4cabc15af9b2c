"""Sign-in, sign-out and the language switch."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from omnibank.api.auth import client_ip, now_of, settings_of
from omnibank.api.ratelimit import TokenBucket
from omnibank.console.i18n import LANG_COOKIE, LANGS, N_
from omnibank.console.web import (
    CONSOLE,
    PRE_CSRF_COOKIE,
    REFRESH_COOKIE,
    Staff,
    clear_session_cookies,
    new_presign_token,
    redirect,
    render,
    safe_next,
    set_session_cookies,
    speaker,
)
from omnibank.db import unit_of_work
from omnibank.users import service as users

router = APIRouter(prefix=CONSOLE)
# the same answer for a wrong password, an unknown user and a locked account (as the API): no answer tells
# which user names exist
REFUSED = N_(
    "Wrong user name or password, or the account is locked (for 15 minutes after five failures in a row)."
)


def _form(request: Request, *, error: str = "", username: str = "", status: int = 200) -> Response:
    token = new_presign_token()
    settings = settings_of(request)
    reason = request.query_params.get("reason", "")
    response = render(request, "signin.html", {
        "presign": token, "error": error, "username": username,
        "next": safe_next(request.query_params.get("next")),
        "expired": reason == "expired",
    }, status=status)  # fmt: skip
    response.set_cookie(PRE_CSRF_COOKIE, token, path=f"{CONSOLE}/signin", httponly=True,
                        secure=settings.console_secure_cookies, samesite="strict", max_age=3600)  # fmt: skip
    return response


@router.get("/signin")
def signin_page(request: Request) -> Response:
    return _form(request)


def _throttled(request: Request, username: str) -> int | None:
    limiter: TokenBucket = request.app.state.login_limiter
    for key in (f"ip:{client_ip(request)}", f"user:{username.lower()}"):
        wait = limiter.take(key)
        if wait is not None:
            return wait
    return None


@router.post("/signin")
async def signin(
    request: Request,
    username: Annotated[str, Form(max_length=150)],
    password: Annotated[str, Form(max_length=1024)],
    presign: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = CONSOLE,  # noqa: A002
) -> Response:
    say = speaker(request)
    expected = request.cookies.get(PRE_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, presign):
        return _form(request, error=say.gettext("The sign-in form expired; please try again."),
                     username=username, status=403)  # fmt: skip
    wait = _throttled(request, username)
    if wait is not None:
        slow_down = say.gettext("Too many sign-in attempts; try again in %(s)s seconds.", s=wait)
        return _form(request, error=slow_down, username=username, status=429)
    settings, now = settings_of(request), now_of(request)

    def check() -> users.TokenPair | None:
        with unit_of_work(settings) as session:
            outcome = users.authenticate(session, username=username, password=password, now=now,
                                         source=f"console:{client_ip(request)}")  # fmt: skip
            return users.issue_tokens(session, outcome.user, settings, now=now) if outcome.user else None

    pair = await run_in_threadpool(check)
    if pair is None:
        return _form(request, error=say.gettext(REFUSED), username=username, status=401)
    response = redirect(safe_next(next))
    set_session_cookies(response, settings, pair.access_token, pair.refresh_token)
    response.delete_cookie(PRE_CSRF_COOKIE, path=f"{CONSOLE}/signin")
    return response


@router.post("/signout")
async def signout(request: Request, _principal: Staff) -> Response:
    settings, now = settings_of(request), now_of(request)
    refresh = request.cookies.get(REFRESH_COOKIE)
    if refresh:

        def end() -> None:
            with unit_of_work(settings) as session:
                users.logout(session, refresh, now=now)

        await run_in_threadpool(end)
    response = redirect(f"{CONSOLE}/signin")
    clear_session_cookies(response, settings)
    return response


@router.get("/lang/{lang}")
def switch_language(request: Request, lang: str, next: str = CONSOLE) -> Response:  # noqa: A002
    """Remember the language (a year) and go back to the page."""
    target = next if next.startswith(("/console", "/c/")) and not next.startswith("//") else CONSOLE
    response = redirect(target)
    if lang in LANGS:
        response.set_cookie(LANG_COOKIE, lang, path="/", max_age=365 * 86400, samesite="lax",
                            secure=settings_of(request).console_secure_cookies)  # fmt: skip
    return response
