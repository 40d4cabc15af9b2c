"""Who is calling: a staff member with an access token (JWT) or an integration with an API token; what
they may do (permissions) and which customers they see (the scope). Also the per-caller rate limit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from omnibank.api.errors import Forbidden, RateLimited, Unauthorized
from omnibank.api.ratelimit import TokenBucket
from omnibank.config import Settings
from omnibank.customers.repository import Scope, scope_root, subtree_scope
from omnibank.db import unit_of_work
from omnibank.users import service as users
from omnibank.users.models import User
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

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def sees_customers(self) -> bool:
        return self.can("customers:read") and (self.role not in NO_CUSTOMER_ROLES)

    def customer_scope(self, session: Session) -> Scope:
        """The customers this caller sees; built from the org tree in the repository layer."""
        if not self.sees_customers:
            return Scope.nothing()
        if self.whole_bank:
            return Scope.whole_bank()
        return subtree_scope(session, self.org_id)

    @property
    def within(self) -> str | None:
        """The org a segment expression is restricted to (None: the whole bank)."""
        return None if self.whole_bank else (self.org_id or "__no_org__")


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


def _user_principal(session: Session, user: User) -> Principal:
    org = scope_root(session, users.org_of(session, user))
    return Principal(
        actor=f"user:{user.username}",
        kind="user",
        role=user.role,
        permissions=ROLE_PERMISSIONS.get(user.role, frozenset()),
        org_id=org,
        whole_bank=user.role in WHOLE_BANK_ROLES,
        supplier_id=user.supplier_id,
    )


_LAST_USED_GRANULARITY = timedelta(minutes=1)


def authenticate(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthorized("sign in first: send Authorization: Bearer <token>")
    token = credentials.credentials
    settings = settings_of(request)
    now = now_of(request)
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
                whole_bank=api_token.org_id is None,
            )
        else:
            claims = users.decode_access_token(token, settings, now=now)
            if claims is None:
                raise Unauthorized("the access token is invalid or expired", code="invalid_token")
            user = session.get(User, int(claims["sub"])) if str(claims["sub"]).isdigit() else None
            if user is None or user.disabled or (user.locked_until is not None and user.locked_until > now):
                raise Unauthorized("the account is locked or no longer exists", code="invalid_token")
            principal = _user_principal(session, user)
    limiter: TokenBucket = request.app.state.rate_limiter
    wait = limiter.take(principal.actor)
    if wait is not None:
        raise RateLimited(f"too many requests; retry in {wait} s", details={"retry_after": wait})
    request.state.principal = principal
    return principal


def require(permission: str) -> Callable[..., Principal]:
    """A dependency: the authenticated caller, who must hold ``permission``."""

    def dependency(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not principal.can(permission):
            raise Forbidden(f"this needs the permission {permission}", details={"needs": permission})
        return principal

    dependency.__name__ = f"require_{permission.replace(':', '_')}"
    return dependency
