"""The coupon lane: the API's three busiest requests (issue, claim, redeem a coupon) straight to the
PostgreSQL fast path, past FastAPI's routing and dependency solving.

Measured on the coupon endpoints, FastAPI's per-request machinery (matching the route across the routers,
solving each level of the dependency tree, validating parameters one by one) was over half of the API's own
CPU, more than the fast path's database call. The lane does for these three requests what that machinery does,
in a few lines, and only for a request with nothing unusual about it: a POST to one of the three paths, a
bearer token already checked (in the principal cache) that holds ``coupons:write`` (a user's session still
live), within its rate, a role that may make the request, a JSON body the endpoint's own model accepts.
Everything else, and every request the fast path declines (nothing written), goes on to FastAPI unchanged (its
body replayed), where the endpoint answers as it always does: errors, replays, refusals, authentication. So
the lane adds no answer of its own; ``tests/api/test_fastlane.py`` checks it answers as the endpoints do.

The lane sits inside the hardening middleware (size limit, security headers, CORS), so its answers carry the
same headers. Without a fast path (SQLite, or the app run without its lifespan) it passes everything on.
"""

from __future__ import annotations

import re

import psycopg
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from omnibank.api.auth import cached_caller, now_of, session_alive
from omnibank.api.errors import store_unavailable
from omnibank.benefits.endpoints import MAX_COUPON_ID, CouponIssue, fast_issue, fast_move

ISSUE_PATH = "/api/v1/coupons"
_MOVE_PATH = re.compile(r"^/api/v1/coupons/([0-9]{1,19})/(claim|redeem)$")
_PERMISSION = "coupons:write"


class CouponLane:
    """ASGI middleware (innermost): serve plain coupon requests on the fast path, pass on the rest."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith(ISSUE_PATH):
            await self.app(scope, receive, send)
            return
        app = scope.get("app")
        if app is None or getattr(app.state, "fast_path", None) is None:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        move = None if path == ISSUE_PATH else _MOVE_PATH.match(path)
        if path != ISSUE_PATH and move is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        principal = cached_caller(request, _PERMISSION)
        if (
            principal is None
            or (principal.role == "supplier" and (move is None or move[2] == "claim"))
            # a user's session, read on every request (sign-out and locks apply at once)
            or (principal.kind == "user" and not await session_alive(request, principal, now_of(request)))
        ):
            await self.app(scope, receive, send)  # the endpoint authenticates, refuses, or says why
            return
        key = request.headers.get("idempotency-key")
        body = b""
        try:
            if move is None:
                body = await request.body()
                content_type = request.headers.get("content-type", "")
                if content_type.split(";", 1)[0].strip().lower() != "application/json":
                    await self.app(scope, _replay(body, receive), send)
                    return
                try:
                    payload = CouponIssue.model_validate_json(body)
                except ValidationError:
                    await self.app(scope, _replay(body, receive), send)  # the endpoint names the field
                    return
                answer = await fast_issue(request, principal, payload, key)
            else:
                coupon_id = int(move[1])
                if not 1 <= coupon_id <= MAX_COUPON_ID:
                    await self.app(scope, receive, send)
                    return
                answer = await fast_move(request, principal, coupon_id, move[2], key)
        except (psycopg.OperationalError, OperationalError) as exc:
            await store_unavailable(request, exc)(scope, receive, send)
            return
        if answer is None:  # declined, nothing written: the endpoint decides afresh
            await self.app(scope, _replay(body, receive) if move is None else receive, send)
            return
        app.state.lane_served += 1
        await answer(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the app after the lane has read the body: the body once, then the connection's own."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
