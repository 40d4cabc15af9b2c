"""Staff accounts: passwords (argon2id), lock-out, sessions (JWT access + rotating refresh tokens) and API
tokens for integrations. Flushes only; the caller commits."""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Connection, Dialect, bindparam, column, select, table, update
from sqlalchemy.orm import Session

from omnibank.audit import service as audit
from omnibank.config import Settings
from omnibank.db.types import UTCDateTime
from omnibank.errors import AppError, Conflict, NotFound
from omnibank.orgs.models import Org, Staff
from omnibank.security import get_cipher
from omnibank.users.models import USER_ROLES, ApiToken, RefreshToken, User, UserSession
from omnibank.users.permissions import SCOPES

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
ACCESS_TTL = timedelta(minutes=15)
REFRESH_TTL = timedelta(days=7)
MIN_PASSWORD = 12
API_TOKEN_PREFIX = "omb_"
_ALGORITHM = "HS256"
_ISSUER = "omnibank"

_hasher = PasswordHasher()  # argon2id with the library's recommended cost

#: the benefits catalogue's suppliers, as a supplier user's account checks one exists: a plain table
#: construct, as benefits sit above users (layers point down; ``make lint``)
_SUPPLIERS = table("suppliers", column("id"))


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against for unknown users (the same cost as a real one); made on first use, not at
    import: it costs ~180 ms, which every CLI command importing this module used to pay."""
    return _hasher.hash("not a password of anyone")


_COMMON = frozenset(
    {"password1234", "passw0rd1234", "123456789012", "qwertyuiop12", "omnibank1234", "administrator"}
)
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{1,63}$")
_TOKEN_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_NO_SYNC = {"synchronize_session": False}


class WeakPassword(AppError):
    code = "weak_password"
    status = 422


# --------------------------------------------------------------------------------------------- passwords


def check_password_strength(password: str, *, username: str) -> None:
    """At least 12 characters, three kinds of character (lower, upper, digit, other) unless 20 or more,
    not a common or repetitive password and not containing the user name."""
    problems = []
    if len(password) < MIN_PASSWORD:
        problems.append(f"at least {MIN_PASSWORD} characters")
    kinds = sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )
    if kinds < 3 and len(password) < 20:
        problems.append("three of: lower-case, upper-case, digits, other characters (or 20+ characters)")
    if password.lower() in _COMMON or len(set(password)) < 5:
        problems.append("not a common or repetitive password")
    if username and username.lower() in password.lower():
        problems.append("not containing the user name")
    if problems:
        raise WeakPassword("the password is too weak: it needs " + "; ".join(problems))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


# ----------------------------------------------------------------------------------------------- accounts


def create_user(
    session: Session,
    *,
    role: str,
    password: str,
    now: datetime,
    actor: str,
    staff_id: str | None = None,
    supplier_id: str | None = None,
    username: str | None = None,
) -> User:
    if role not in USER_ROLES:
        raise AppError(f"unknown role {role!r}; roles: {', '.join(USER_ROLES)}", code="unknown_role")
    if role == "supplier":
        if not supplier_id:
            raise AppError("a supplier user needs a supplier (--supplier)", code="supplier_required")
        if session.scalar(select(_SUPPLIERS.c.id).where(_SUPPLIERS.c.id == supplier_id)) is None:
            raise NotFound(f"no supplier {supplier_id} (load the benefits catalogue first)")
    elif supplier_id:
        raise AppError("only a supplier user has a supplier", code="supplier_not_allowed")
    if staff_id is not None and session.get(Staff, staff_id) is None:
        raise NotFound(f"no staff member {staff_id} (load staff.csv first)", code="unknown_staff")
    if role != "supplier" and staff_id is None:
        raise AppError(f"a {role} user needs a staff member (--staff)", code="staff_required")
    name = username or staff_id or supplier_id or ""
    if not _USERNAME.match(name):
        raise AppError(f"user name {name!r}: 2 to 64 letters, digits, '.', '_' or '-'", code="bad_username")
    if session.scalar(select(User.id).where(User.username == name)) is not None:
        raise Conflict(f"a user named {name} exists already", code="user_exists")
    check_password_strength(password, username=name)
    user = User(
        username=name,
        staff_id=staff_id,
        supplier_id=supplier_id,
        role=role,
        password_hash=hash_password(password),
        failed_logins=0,
        disabled=False,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    session.flush()
    audit.record(
        session, actor=actor, action="user.create", subject_type="user", subject_id=name,
        detail={"role": role, "staff_id": staff_id, "supplier_id": supplier_id},
    )  # fmt: skip
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username}")
    return user


def set_locked(session: Session, username: str, *, locked: bool, now: datetime, actor: str) -> User:
    """Lock (disable) or unlock a user; unlocking also clears a lock-out after failed logins. Locking
    revokes the user's sessions."""
    user = get_user(session, username)
    user.disabled = locked
    user.updated_at = now
    if locked:
        _revoke_user_sessions(session, user.id, now)
    else:
        user.failed_logins = 0
        user.locked_until = None
    session.flush()
    audit.record(
        session, actor=actor, action="user.lock" if locked else "user.unlock", subject_type="user",
        subject_id=username,
    )  # fmt: skip
    return user


def org_of(session: Session, user: User) -> str | None:
    if user.staff_id is None:
        return None
    staff = session.get(Staff, user.staff_id)
    return staff.org_id if staff else None


# ------------------------------------------------------------------------------------------------- login


@dataclass(frozen=True)
class LoginOutcome:
    user: User | None
    refused: Literal["bad_credentials", "locked"] | None = None
    retry_after: int | None = None  # seconds, for a lock-out


def authenticate(
    session: Session, *, username: str, password: str, now: datetime, source: str = "cli"
) -> LoginOutcome:
    """Check a password. A wrong one counts a failure (the caller commits it even though the login is
    refused); the fifth in a row locks the account for 15 minutes (audited from ``source``: the API passes
    ``api:<ip>``). An unknown user costs the same hash."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        _verify(_dummy_hash(), password)
        return LoginOutcome(None, "bad_credentials")
    if user.disabled or (user.locked_until is not None and user.locked_until > now):
        # the same hash as any other answer costs: a locked account must not answer sooner than a wrong
        # password or an unknown user (the caller answers all three alike)
        _verify(user.password_hash, password)
        wait = int((user.locked_until - now).total_seconds()) + 1 if user.locked_until else None
        return LoginOutcome(None, "locked", None if user.disabled else wait)
    if not _verify(user.password_hash, password):
        # counted in the database, so two wrong passwords at once both count; a lock-out that ran out
        # starts the count afresh
        expired = user.locked_until is not None
        session.execute(
            update(User)
            .where(User.id == user.id)
            .values(failed_logins=1 if expired else User.failed_logins + 1, locked_until=None, updated_at=now)
            .execution_options(**_NO_SYNC)
        )
        failures = session.scalar(
            select(User.failed_logins).where(User.id == user.id).execution_options(populate_existing=True)
        )
        if (failures or 0) >= MAX_FAILED_LOGINS:
            session.execute(
                update(User)
                .where(User.id == user.id)
                .values(locked_until=now + LOCKOUT)
                .execution_options(**_NO_SYNC)
            )
            audit.record(
                session, actor=f"user:{username}", action="user.locked_out", subject_type="user",
                subject_id=username, detail={"failures": failures}, source=source, at=now,
            )  # fmt: skip
            return LoginOutcome(None, "locked", int(LOCKOUT.total_seconds()))
        return LoginOutcome(None, "bad_credentials")
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    session.flush()
    return LoginOutcome(user)


def signing_key(settings: Settings) -> bytes:
    """The access tokens' HMAC key, derived (HKDF) from the data home's key material: never hard-coded,
    the same for every process of one home."""
    ring = get_cipher(settings).ring
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"omnibank/api/jwt/v1").derive(
        ring.index_key
    )


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _access_token(user: User, settings: Settings, now: datetime, session_id: str) -> str:
    claims = {
        "iss": _ISSUER,
        "sub": str(user.id),
        "sid": session_id,  # checked on every request: ending the session refuses the token at once
        "name": user.username,
        "role": user.role,
        "typ": "access",
        "iat": int(now.timestamp()),
        "exp": int((now + ACCESS_TTL).timestamp()),
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(claims, signing_key(settings), algorithm=_ALGORITHM)


def _new_refresh(session: Session, user_id: int, family: str, now: datetime) -> str:
    token = secrets.token_urlsafe(32)
    session.add(
        RefreshToken(
            user_id=user_id,
            family=family,
            token_hash=digest(token),
            created_at=now,
            expires_at=now + REFRESH_TTL,
        )
    )
    session.flush()
    return token


def issue_tokens(session: Session, user: User, settings: Settings, *, now: datetime) -> TokenPair:
    """A new session: its row, its first refresh token and an access token bound to it."""
    family = secrets.token_hex(16)
    session.add(UserSession(id=family, user_id=user.id, created_at=now))
    refresh = _new_refresh(session, user.id, family, now)
    return TokenPair(_access_token(user, settings, now, family), refresh, int(ACCESS_TTL.total_seconds()))


# built once: every request with an access token runs it (its compiled form is cached by SQLAlchemy too)
_SESSION_ALIVE = (
    select(UserSession.id)
    .join(User, User.id == UserSession.user_id)
    .where(
        UserSession.id == bindparam("sid"),
        UserSession.user_id == bindparam("uid"),
        UserSession.revoked_at.is_(None),
        User.disabled.is_(False),
        (User.locked_until.is_(None)) | (User.locked_until <= bindparam("now", type_=UTCDateTime())),
    )
)


@functools.cache
def session_alive_sql(dialect: Dialect) -> str:
    """:func:`session_alive`'s statement as ``dialect`` writes it (parameters ``sid``, ``uid``, ``now``):
    the API server runs it on the coupon fast path's PostgreSQL connections, without a thread hand-off."""
    return str(_SESSION_ALIVE.compile(dialect=dialect))


def session_alive(session: Session | Connection, *, user_id: int, session_id: str, now: datetime) -> bool:
    """Whether an access token of this user and session may still be used: the session not ended, the
    account neither locked by an administrator nor locked out. One primary-key lookup, joined to the user:
    every request with an access token asks it (no cache), so an ended session is refused at once in every
    server process."""
    found = session.execute(_SESSION_ALIVE, {"sid": session_id, "uid": user_id, "now": now}).first()
    return found is not None


def decode_access_token(token: str, settings: Settings, *, now: datetime) -> dict[str, Any] | None:
    """The claims of a valid, unexpired access token (expiry against the injected clock); None otherwise."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            signing_key(settings),
            algorithms=[_ALGORITHM],
            issuer=_ISSUER,
            options={"require": ["exp", "iat", "sub", "iss"], "verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError:
        return None
    if claims.get("typ") != "access" or not isinstance(claims.get("exp"), int):
        return None
    if claims["exp"] <= int(now.timestamp()):
        return None
    return claims


@dataclass(frozen=True)
class RefreshOutcome:
    tokens: TokenPair | None
    refused: str | None = None


def refresh_tokens(session: Session, token: str, settings: Settings, *, now: datetime) -> RefreshOutcome:
    """Rotate: the presented refresh token is used up and the next one of its family issued. A token used
    before revokes its whole family (the caller commits that even though the refresh is refused)."""
    row = session.scalar(select(RefreshToken).where(RefreshToken.token_hash == digest(token)))
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return RefreshOutcome(None, "invalid_refresh_token")
    if row.used_at is not None:
        _revoke_family(session, row.family, now)
        return RefreshOutcome(None, "refresh_token_reused")
    used = session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None), RefreshToken.revoked_at.is_(None))
        .values(used_at=now)
        .execution_options(**_NO_SYNC)
    )
    if getattr(used, "rowcount", 0) != 1:  # used at the same moment by another request
        _revoke_family(session, row.family, now)
        return RefreshOutcome(None, "refresh_token_reused")
    user = session.get(User, row.user_id)
    if user is None or user.disabled or (user.locked_until is not None and user.locked_until > now):
        return RefreshOutcome(None, "account_locked")
    nxt = _new_refresh(session, user.id, row.family, now)
    access = _access_token(user, settings, now, row.family)
    return RefreshOutcome(TokenPair(access, nxt, int(ACCESS_TTL.total_seconds())))


def logout(session: Session, token: str, *, now: datetime) -> bool:
    """Revoke the refresh token's family: this session, however often it was refreshed."""
    row = session.scalar(select(RefreshToken).where(RefreshToken.token_hash == digest(token)))
    if row is None:
        return False
    _revoke_family(session, row.family, now)
    return True


def _revoke_family(session: Session, family: str, now: datetime) -> None:
    """End one session: its refresh tokens and (through its row) its access tokens."""
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.family == family, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(**_NO_SYNC)
    )
    session.execute(
        update(UserSession)
        .where(UserSession.id == family, UserSession.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(**_NO_SYNC)
    )


def _revoke_user_sessions(session: Session, user_id: int, now: datetime) -> None:
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(**_NO_SYNC)
    )
    session.execute(
        update(UserSession)
        .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(**_NO_SYNC)
    )


# -------------------------------------------------------------------------------------------- API tokens

_DURATION = re.compile(r"^\s*(\d{1,5})\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_TOKEN_LIFETIME = timedelta(days=400)


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``2w``."""
    m = _DURATION.match(text)
    if not m or int(m.group(1)) == 0:
        raise AppError(f"expiry {text!r}: give a number and a unit, such as 90d, 12h, 30m or 2w")
    span = timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    if span > MAX_TOKEN_LIFETIME:
        raise AppError(f"expiry {text!r}: at most {MAX_TOKEN_LIFETIME.days} days")
    return span


def parse_scopes(text: str) -> list[str]:
    scopes = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise AppError(
            f"unknown scope(s) {', '.join(unknown) or '(none given)'}; scopes: {', '.join(SCOPES)}",
            code="unknown_scope",
        )
    return sorted(set(scopes))


def create_api_token(
    session: Session,
    *,
    name: str,
    scopes: list[str],
    lifetime: timedelta,
    now: datetime,
    actor: str,
    org_id: str | None = None,
    bank_wide: bool = False,
) -> tuple[ApiToken, str]:
    """A new token; the plaintext is returned once and never stored. Its reach is said on purpose: the
    customers of ``org_id``'s subtree, or with ``bank_wide`` every customer of the bank (to read and, with
    ``events:write``, to send events for)."""
    if not _TOKEN_NAME.match(name):
        raise AppError(f"token name {name!r}: lower-case letters, digits, '_' or '-', starting with a letter")
    if (org_id is None) != bank_wide:
        raise AppError(
            "a token serves the customers of --org ORG (that org's subtree) or, with --bank-wide, every "
            "customer of the bank: give " + ("one of them, not both" if bank_wide else "one of them"),
            code="token_reach",
        )
    if session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise Conflict(f"a token named {name} exists already (revoke it first)", code="token_exists")
    if org_id is not None and session.get(Org, org_id) is None:
        raise NotFound(f"no org {org_id}")
    prefix = secrets.token_hex(4)
    plaintext = f"{API_TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken(
        name=name,
        prefix=prefix,
        token_hash=digest(plaintext),
        scopes=",".join(scopes),
        org_id=org_id,
        created_at=now,
        created_by=actor,
        expires_at=now + lifetime,
    )
    session.add(token)
    session.flush()
    audit.record(
        session, actor=actor, action="token.create", subject_type="api_token", subject_id=name,
        detail={"scopes": scopes, "expires_at": token.expires_at.isoformat(), "org_id": org_id,
                "bank_wide": bank_wide},
    )  # fmt: skip
    return token, plaintext


def list_api_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.name)))


def revoke_api_token(session: Session, name: str, *, now: datetime, actor: str) -> ApiToken:
    token = session.scalar(select(ApiToken).where(ApiToken.name == name))
    if token is None:
        raise NotFound(f"no API token {name}")
    if token.revoked_at is None:
        token.revoked_at = now
        session.flush()
        audit.record(session, actor=actor, action="token.revoke", subject_type="api_token", subject_id=name)
    return token


def resolve_api_token(session: Session, plaintext: str, *, now: datetime) -> ApiToken | None:
    """The live token with this plaintext (not revoked, not expired), or None."""
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest(plaintext)))
    if token is None or token.revoked_at is not None or token.expires_at <= now:
        return None
    return token
