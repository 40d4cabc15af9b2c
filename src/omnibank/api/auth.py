"""Who is calling: a staff member with an access token (JWT) or an integration with an API token; what
they may do (permissions) and which customers they see (the scope). Also the per-caller rate limit.

A checked token is cached for ``OMNIBANK_API_AUTH_CACHE_SECONDS`` (the principal: role, org, scopes), but an
access token's session is read on every request (one primary-key lookup, no cache): sign-out, a refresh
token presented twice or a lock refuse the session's access tokens at once, in every server process. An API
token's revocation takes effect at once in the process that made it and within the cache time elsewhere."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import ORMExecuteState, Session
from starlette.concurrency import run_in_threadpool

from omnibank.api.errors import Forbidden, RateLimited, Unauthorized
from omnibank.api.ratelimit import TokenBucket
from omnibank.benefits.fastpath import FastPath
from omnibank.config import Settings
from omnibank.customers.repository import ASSIGNED_ROLES, Scope, Within, scope_root, staff_scope
from omnibank.db import get_engine, unit_of_work
from omnibank.users import service as users
from omnibank.users.models import ApiToken, User
from omnibank.users.permissions import NO_CUSTOMER_ROLES, ROLE_PERMISSIONS, WHOLE_BANK_ROLES

_bearer = HTTPBearer(auto_error=False, description="An access token from /auth/login, or an API token.")


@dataclass(frozen=True)
class Principal:
    """The caller. ``org_id`` None with ``whole_bank``: every customer; else the subtree under ``org_id``."""

    actor: str  # for the audit trail: "user:<name>" or "token:<name>"
    kind: Literal["user", "token"]
    role: str | None
    permissions: frozenset[str]
    org_id: str | None
    whole_bank: bool
    supplier_id: str | None = None
    rm_id: str | None = None  # an RM's staff id: they see their own customers and their unit's queue (管户)
    user_id: int | None = None  # a user's: with ``session_id``, what every request checks is still live
    session_id: str | None = None

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def sees_customers(self) -> bool:
        return self.can("customers:read") and (self.role not in NO_CUSTOMER_ROLES)

    def reach(self, session: Session) -> Scope:
        """The customers this caller acts for (reads them with ``customers:read``, sends their events with
        ``events:write``); the rule is the repository's."""
        if self.whole_bank:
            return Scope.whole_bank()
        return staff_scope(session, org_id=self.org_id, staff_id=self.rm_id, role=self.role or "")

    def customer_scope(self, session: Session) -> Scope:
        """The customers this caller sees."""
        return self.reach(session) if self.sees_customers else Scope.nothing()

    @property
    def within(self) -> Within | None:
        """What a segment expression is restricted to (None: the whole bank)."""
        return None if self.whole_bank else Within(self.org_id or "__no_org__", rm_id=self.rm_id)


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def now_of(request: Request) -> datetime:
    clock: Callable[[], datetime] = request.app.state.clock
    return clock()


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def audit_source(request: Request) -> str:
    return f"api:{client_ip(request)}"


def _user_principal(session: Session, user: User, session_id: str) -> Principal:
    org = scope_root(session, users.org_of(session, user))
    return Principal(
        actor=f"user:{user.username}",
        kind="user",
        role=user.role,
        permissions=ROLE_PERMISSIONS.get(user.role, frozenset()),
        org_id=org,
        whole_bank=user.role in WHOLE_BANK_ROLES,
        supplier_id=user.supplier_id,
        rm_id=user.staff_id if user.role in ASSIGNED_ROLES else None,
        user_id=user.id,
        session_id=session_id,
    )


_LAST_USED_GRANULARITY = timedelta(minutes=1)

# ------------------------------------------------------------------------------ the principal cache

_generation = 0  # bumped whenever this process changes a user or an API token: cached principals lapse


def _bump() -> None:
    global _generation
    _generation += 1


_IDENTITY_CHANGED = "identity_changed"


def _changed(session: Session) -> None:
    """Bumped at once and again when the transaction commits: a lookup that read the old row between
    the two (the change was flushed, not yet committed) cached it under the older generation."""
    _bump()
    session.info[_IDENTITY_CHANGED] = True


def _watch_identity_flush(session: Session, _context: Any) -> None:
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, User):
            _changed(session)
            return
        if isinstance(obj, ApiToken):
            changed = {a.key for a in sa_inspect(obj).attrs if a.history.has_changes()}
            if changed - {"last_used_at"}:
                _changed(session)
                return


def _watch_identity_statements(state: ORMExecuteState) -> None:
    mapper = state.bind_mapper
    if (state.is_update or state.is_delete) and mapper is not None and mapper.class_ in (User, ApiToken):
        _changed(state.session)


def _watch_identity_commit(session: Session) -> None:
    if session.info.pop(_IDENTITY_CHANGED, False):
        _bump()


event.listen(Session, "after_flush", _watch_identity_flush)
event.listen(Session, "do_orm_execute", _watch_identity_statements)
event.listen(Session, "after_commit", _watch_identity_commit)


@dataclass(frozen=True)
class _Cached:
    principal: Principal
    expires_at: datetime  # the token's own expiry: never served past it
    fresh_until: float  # monotonic
    generation: int


class PrincipalCache:
    """Checked tokens, reused for ``seconds`` so a request does not open a transaction to authenticate.

    Staleness is bounded: a token is never accepted past its own expiry; an access token's session is
    checked on every request besides (``authenticate``), so a user's sign-out or lock applies at once
    everywhere; a revocation, lock or change of a user or API token made in this process (through the ORM,
    by any path) makes the cache lapse at once; one made by another process (a second server worker, the
    CLI) reaches the cached principal (an API token's revocation, a role) within ``seconds``
    (``OMNIBANK_API_AUTH_CACHE_SECONDS``, default 5; 0 turns the cache off). The last-used time of an API
    token is written when the cache is refilled, at most every ``seconds`` (it is kept to the minute)."""

    def __init__(self, seconds: float, *, max_entries: int = 10_000):
        self.seconds = seconds
        self.max_entries = max_entries
        self._entries: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    def get(self, key: str, now: datetime) -> Principal | None:
        hit = self._entries.get(key)
        if hit is None:
            return None
        if hit.generation != _generation or time.monotonic() >= hit.fresh_until or now >= hit.expires_at:
            with self._lock:
                self._entries.pop(key, None)
            return None
        return hit.principal

    def refresh_due(self, key: str) -> bool:
        """Whether the entry for ``key`` is in the last fifth of its time: a request that finds it so starts
        a check in the background (one at a time), so a busy caller's entry is renewed before it lapses and
        its requests never wait for the store."""
        hit = self._entries.get(key)
        return hit is not None and hit.fresh_until - time.monotonic() <= self.seconds / 5

    def drop(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def put(self, key: str, principal: Principal, expires_at: datetime, generation: int) -> None:
        if self.seconds <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = _Cached(principal, expires_at, time.monotonic() + self.seconds, generation)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _lookup(token: str, settings: Settings, now: datetime) -> tuple[Principal, datetime]:
    """Check ``token`` against the store: the principal and when the token expires."""
    with unit_of_work(settings) as session:
        if token.startswith(users.API_TOKEN_PREFIX):
            api_token = users.resolve_api_token(session, token, now=now)
            if api_token is None:
                raise Unauthorized("the API token is unknown, revoked or expired", code="invalid_token")
            if api_token.last_used_at is None or now - api_token.last_used_at > _LAST_USED_GRANULARITY:
                api_token.last_used_at = now
            principal = Principal(
                actor=f"token:{api_token.name}",
                kind="token",
                role=None,
                permissions=frozenset(api_token.scopes.split(",")),
                org_id=scope_root(session, api_token.org_id),
                whole_bank=api_token.org_id is None,  # made so on purpose (token create --bank-wide)
            )
            return principal, api_token.expires_at
        claims = users.decode_access_token(token, settings, now=now)
        if claims is None:
            raise Unauthorized("the access token is invalid or expired", code="invalid_token")
        sid = claims.get("sid")
        user = session.get(User, int(claims["sub"])) if str(claims["sub"]).isdigit() else None
        if (
            user is None
            or not isinstance(sid, str)
            or not users.session_alive(session, user_id=user.id, session_id=sid, now=now)
        ):
            raise Unauthorized(_ENDED, code="invalid_token")
        return _user_principal(session, user, sid), datetime.fromtimestamp(int(claims["exp"]), UTC)


_ENDED = "the session has ended (signed out, or the account is locked); sign in again"


def _session_alive(settings: Settings, principal: Principal, now: datetime) -> bool:
    """Whether the session of a user's access token is still live: read from the store on every request,
    on a connection of the pool, without a unit of work (nothing is written)."""
    user_id, session_id = principal.user_id, principal.session_id
    if user_id is None or session_id is None:
        return False
    with get_engine(settings).connect() as conn:
        return users.session_alive(conn, user_id=user_id, session_id=session_id, now=now)


async def session_alive(request: Request, principal: Principal, now: datetime) -> bool:
    """:func:`_session_alive` for a request: on PostgreSQL one statement on a connection of the fast path's
    pool (autocommit, on the event loop: one round trip), elsewhere in a worker thread."""
    fast = fast_path_of(request)
    if fast is None or principal.user_id is None or principal.session_id is None:
        return await run_in_threadpool(_session_alive, settings_of(request), principal, now)
    sql = users.session_alive_sql(get_engine(settings_of(request)).dialect)
    async with fast.pool.connection() as conn:
        cursor = await conn.execute(sql, {"sid": principal.session_id, "uid": principal.user_id, "now": now})
        return await cursor.fetchone() is not None


async def authenticate(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The caller (a dependency). A cached token is checked on the event loop; only a lookup in the store
    goes to a worker thread (async: a sync dependency costs every request a thread hand-off)."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthorized("sign in first: send Authorization: Bearer <token>")
    token = credentials.credentials
    now = now_of(request)
    cache: PrincipalCache = request.app.state.principal_cache
    key = users.digest(token)
    cached = cache.get(key, now)
    if cached is None:
        principal = await asyncio.shield(_checking(request, key, token))
    else:
        principal = cached
        if principal.kind == "user" and not await session_alive(request, principal, now):
            cache.drop(key)
            raise Unauthorized(_ENDED, code="invalid_token")
        _refresh_if_due(request, cache, key, token)
    # a request the coupon lane passed on has been counted against the caller's rate already
    wait = getattr(request.state, _RATE_CHECKED, _UNCHECKED)
    if wait is _UNCHECKED:
        limiter: TokenBucket = request.app.state.rate_limiter
        wait = limiter.take(principal.actor)
    if wait is not None:
        raise RateLimited(f"too many requests; retry in {wait} s", details={"retry_after": wait})
    request.state.principal = principal
    return principal


def _checking(request: Request, key: str, token: str) -> asyncio.Future[Principal]:
    """The check of ``token`` against the store, one at a time per token in a process: requests that find
    no entry at once (a busy caller when its entry lapses) wait for the same check instead of each opening
    a transaction of its own. The check fills the cache; a token found invalid leaves it."""
    inflight: dict[str, asyncio.Future[Principal]] = request.app.state.auth_inflight
    task = _check_under_way(request, key)
    if task is None:
        settings = settings_of(request)
        now = now_of(request)
        cache: PrincipalCache = request.app.state.principal_cache

        async def check() -> Principal:
            generation = _generation
            try:
                principal, expires_at = await run_in_threadpool(_lookup, token, settings, now)
            except Unauthorized:
                cache.drop(key)
                raise
            cache.put(key, principal, expires_at, generation)
            return principal

        task = inflight[key] = asyncio.ensure_future(check())
        task.add_done_callback(lambda done: inflight.pop(key, None) if inflight.get(key) is done else None)
    return task


def _refresh_if_due(request: Request, cache: PrincipalCache, key: str, token: str) -> None:
    if cache.refresh_due(key) and _check_under_way(request, key) is None:
        # in the background; its outcome is the cache's (an error is the next request's to see)
        _checking(request, key, token).add_done_callback(lambda done: done.cancelled() or done.exception())


def _check_under_way(request: Request, key: str) -> asyncio.Future[Principal] | None:
    """The check of this token still running on this event loop (not one finished, or left by an event
    loop that is gone: a test client's)."""
    task: asyncio.Future[Principal] | None = request.app.state.auth_inflight.get(key)
    if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
        return None
    return task


_RATE_CHECKED = "rate_checked"
_UNCHECKED = object()


def cached_caller(request: Request, permission: str) -> Principal | None:
    """The caller, for the coupon lane, if its bearer token is in the principal cache and holds
    ``permission`` and the caller is within its rate; else None (the endpoint authenticates and answers).
    The request is counted against the rate once, here, and marked so ``authenticate`` does not count it
    again if the lane passes it on."""
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    cache: PrincipalCache = request.app.state.principal_cache
    key = users.digest(token)
    principal = cache.get(key, now_of(request))
    if principal is None or not principal.can(permission):
        return None
    _refresh_if_due(request, cache, key, token)
    limiter: TokenBucket = request.app.state.rate_limiter
    wait = limiter.take(principal.actor)
    setattr(request.state, _RATE_CHECKED, wait)
    return principal if wait is None else None


class Require(HTTPBearer):
    """A dependency: the authenticated caller (a bearer token), who must hold ``permission``.

    One node in FastAPI's dependency tree, not three (the bearer scheme, ``authenticate``, the permission
    check): FastAPI solves every level of the tree on every request, which measured a quarter of the API's
    own time on the coupon endpoints. It is its own bearer scheme, so OpenAPI still shows the security."""

    def __init__(self, permission: str):
        super().__init__(auto_error=False, scheme_name="HTTPBearer", description=_bearer.model.description)
        self.permission = permission

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        principal = await authenticate(request, await super().__call__(request))
        if not principal.can(self.permission):
            needs = self.permission
            raise Forbidden(f"this needs the permission {needs}", details={"needs": needs})
        return principal


def require(permission: str) -> Require:
    """A dependency: the authenticated caller, who must hold ``permission``."""
    return Require(permission)


# ------------------------------------------------------------------------- the fast path's view of a caller


def fast_path_of(request: Request) -> FastPath | None:
    """The server process's PostgreSQL fast path (None: SQLite, or an app run without its lifespan)."""
    fast: FastPath | None = getattr(request.app.state, "fast_path", None)
    return fast


async def scope_orgs(request: Request, principal: Principal) -> list[str] | None:
    """The branches whose customers the caller sees, for the fast path's statements: None for the whole
    bank, else a list (empty: none); for an RM (``Principal.rm_id``) the branches whose unassigned customers
    they see, besides their own. The same scope as ``Principal.customer_scope``; an org's subtree is
    read once per ``api_auth_cache_seconds`` in a process (as a token is), so a change of the org tree
    reaches a running server within that time."""
    if not principal.sees_customers:
        return []
    if principal.whole_bank:
        return None
    settings = settings_of(request)
    cache: dict[str | None, tuple[float, list[str]]] = request.app.state.scope_cache
    hit = cache.get(principal.org_id)
    if hit is not None and time.monotonic() < hit[0]:
        return hit[1]

    def read() -> list[str]:
        with unit_of_work(settings) as session:
            return sorted(principal.customer_scope(session).org_ids or ())

    orgs = await run_in_threadpool(read)
    if settings.api_auth_cache_seconds > 0:
        if len(cache) >= 10_000:
            cache.clear()
        cache[principal.org_id] = (time.monotonic() + settings.api_auth_cache_seconds, orgs)
    return orgs
