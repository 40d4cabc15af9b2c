"""/auth (sign in, refresh, sign out) and /users."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from omnibank.api.auth import Principal, audit_source, client_ip, now_of, require, settings_of
from omnibank.api.errors import ERROR_RESPONSES, RateLimited, Unauthorized
from omnibank.api.idempotency import run_write
from omnibank.api.ratelimit import TokenBucket
from omnibank.db import unit_of_work
from omnibank.users import service
from omnibank.users.schemas import (
    LoginRequest,
    LogoutResponse,
    RefreshRequest,
    TokenResponse,
    UserCreate,
    UserRead,
)

router = APIRouter(responses=ERROR_RESPONSES)
REFUSED = (
    "wrong user name or password, or the account is locked (for 15 minutes after five failures in a row, or "
    "by an administrator)"
)
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


def _throttle(request: Request, username: str) -> None:
    limiter: TokenBucket = request.app.state.login_limiter
    for key in (f"ip:{client_ip(request)}", f"user:{username.lower()}"):
        wait = limiter.take(key)
        if wait is not None:
            raise RateLimited(f"too many sign-in attempts; retry in {wait} s", details={"retry_after": wait})


@router.post("/auth/login", response_model=TokenResponse, tags=["auth"])
def login(body: LoginRequest, request: Request) -> TokenResponse:
    """Sign in with a user name and password: a 15-minute access token and a refresh token. Five wrong
    passwords in a row lock the account for 15 minutes; a refusal (401) does not say whether the user name
    exists or the account is locked."""
    _throttle(request, body.username)
    settings, now = settings_of(request), now_of(request)
    with unit_of_work(settings) as session:
        outcome = service.authenticate(session, username=body.username, password=body.password, now=now,
                                       source=audit_source(request))  # fmt: skip
        tokens = service.issue_tokens(session, outcome.user, settings, now=now) if outcome.user else None
    # the failure count is committed above even though the sign-in is refused. A locked account answers as
    # a wrong password and an unknown user do (same status, body and hash cost): no answer tells which user
    # names exist
    if tokens is None:
        raise Unauthorized(REFUSED, code="invalid_credentials")
    return TokenResponse(access_token=tokens.access_token, refresh_token=tokens.refresh_token,
                         expires_in=tokens.expires_in)  # fmt: skip


@router.post("/auth/refresh", response_model=TokenResponse, tags=["auth"])
def refresh(body: RefreshRequest, request: Request) -> TokenResponse:
    """Exchange a refresh token for a new pair; the old one is used up (presenting it again revokes the
    session)."""
    settings, now = settings_of(request), now_of(request)
    with unit_of_work(settings) as session:
        outcome = service.refresh_tokens(session, body.refresh_token, settings, now=now)
    if outcome.tokens is None:
        raise Unauthorized("the refresh token is invalid, used or revoked; sign in again",
                           code=outcome.refused or "invalid_refresh_token")  # fmt: skip
    t = outcome.tokens
    return TokenResponse(access_token=t.access_token, refresh_token=t.refresh_token, expires_in=t.expires_in)


@router.post("/auth/logout", response_model=LogoutResponse, tags=["auth"])
def logout(body: RefreshRequest, request: Request) -> LogoutResponse:
    """End the session of this refresh token: its refresh tokens and its access tokens stop working at
    once."""
    with unit_of_work(settings_of(request)) as session:
        revoked = service.logout(session, body.refresh_token, now=now_of(request))
    return LogoutResponse(revoked=revoked)


@router.post("/users", response_model=UserRead, status_code=201, tags=["users"])
def create_user(
    body: UserCreate,
    request: Request,
    principal: Annotated[Principal, Depends(require("users:write"))],
    idempotency_key: IdemKey = None,
) -> JSONResponse:
    """Create a staff (or supplier) account (administrators)."""
    now = now_of(request)

    def write(session: Session) -> tuple[int, UserRead]:
        user = service.create_user(
            session, role=body.role, password=body.password, now=now, actor=principal.actor,
            staff_id=body.staff_id, supplier_id=body.supplier_id, username=body.username,
        )  # fmt: skip
        return 201, UserRead(username=user.username, role=user.role, staff_id=user.staff_id,
                             supplier_id=user.supplier_id, created_at=user.created_at)  # fmt: skip

    return run_write(
        settings_of(request), actor=principal.actor, key=idempotency_key, method="POST",
        path=request.url.path, payload=body.model_copy(update={"password": ""}), now=now, write=write,
    )  # fmt: skip
