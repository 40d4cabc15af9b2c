"""The fast lane: the API's busiest requests (today issue, claim, redeem a coupon) straight to the
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

The lane knows no domain: a domain's endpoints module registers its routes (:func:`register`, e.g. the
coupon routes in :mod:`omnibank.benefits.endpoints`), so this module imports none (layers point down).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import psycopg
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import OperationalError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from omnibank.api.auth import Principal, cached_caller, now_of, session_alive
from omnibank.api.errors import store_unavailable

#: serves a route: (request, caller, the path's parts, the body, the idempotency key) → an answer, or None
Serve = Callable[
    [Request, Principal, tuple[str, ...], BaseModel | None, str | None], Awaitable[ASGIApp | None]
]


@dataclass(frozen=True)
class FastRoute:
    """A POST a domain serves on the lane, when nothing is unusual about it."""

    name: str
    #: the path's parts the route needs (e.g. a coupon id and an action), or None: not this route
    match: Callable[[str], tuple[str, ...] | None]
    #: the permission the caller's token must hold
    permission: str
    #: whether this caller may make this request (a refusal is the endpoint's to give, with its reasons)
    allows: Callable[[Principal, tuple[str, ...]], bool]
    #: the request's JSON body is of this model (the endpoint's own), or the request has none
    body: type[BaseModel] | None
    #: the answer, or None: declined, nothing written (the endpoint decides afresh)
    serve: Callable[
        [Request, Principal, tuple[str, ...], BaseModel | None, str | None], Awaitable[ASGIApp | None]
    ]


_ROUTES: dict[str, FastRoute] = {}


def register(route: FastRoute) -> None:
    """Serve ``route`` on the lane (once per name, however often its module is imported)."""
    _ROUTES[route.name] = route


def _route_of(path: str) -> tuple[FastRoute, tuple[str, ...]] | None:
    for route in _ROUTES.values():
        parts = route.match(path)
        if parts is not None:
            return route, parts
    return None


class FastLane:
    """ASGI middleware (innermost): serve plain requests of the registered routes on the fast path, pass
    on the rest."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = _route_of(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        app = scope.get("app")
        if found is None or app is None or getattr(app.state, "fast_path", None) is None:
            await self.app(scope, receive, send)
            return
        route, parts = found
        request = Request(scope, receive)
        principal = cached_caller(request, route.permission)
        if (
            principal is None
            or not route.allows(principal, parts)
            # a user's session, read on every request (sign-out and locks apply at once)
            or (principal.kind == "user" and not await session_alive(request, principal, now_of(request)))
        ):
            await self.app(scope, receive, send)  # the endpoint authenticates, refuses, or says why
            return
        key = request.headers.get("idempotency-key")
        body = b""
        try:
            payload = None
            if route.body is not None:
                body = await request.body()
                content_type = request.headers.get("content-type", "")
                if content_type.split(";", 1)[0].strip().lower() != "application/json":
                    await self.app(scope, _replay(body, receive), send)
                    return
                try:
                    payload = route.body.model_validate_json(body)
                except ValidationError:
                    await self.app(scope, _replay(body, receive), send)  # the endpoint names the field
                    return
            answer = await route.serve(request, principal, parts, payload, key)
        except (psycopg.OperationalError, OperationalError) as exc:
            await store_unavailable(request, exc)(scope, receive, send)
            return
        if answer is None:  # declined, nothing written: the endpoint decides afresh
            await self.app(scope, _replay(body, receive) if route.body is not None else receive, send)
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
