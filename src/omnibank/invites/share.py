"""Share links (M4, E1): a staff member's short link ``/s/{token}`` to a product, a campaign, a benefit, a
partner scene or the bank's home page, for one channel; the landing it redirects to; the clicks it records;
and the figures per staff member and per target. Flushes only; the caller commits.

**The landing.** ``GET /s/{token}`` answers 302 to the target's landing page (a template per kind,
``OMNIBANK_SHARE_LANDING``) with ``invite_code`` (the staff member's live code; left out once it was revoked),
``share_token`` and ``channel`` as query parameters, so the bank's pages can put ``invite_code`` and
``share_token`` on the events they send (the binding pass reads them, :mod:`omnibank.invites.binding`).

**Clicks.** A click keeps its time, the link's channel and ``device``: a keyed hash (the platform's blind
index key) of the user agent and the client address; the address itself is never stored nor logged. The
same device on the same link counts once a minute (a click counts when the last *counted* click of that
device on that link is 60 s or more before it).

Why clicks are buffered: a redirect that wrote its click in its own transaction made ~600 redirects/s on the
embedded store (one SQLite commit each, ~1.5 ms); held in memory and written in batches every
``OMNIBANK_SHARE_FLUSH_SECONDS`` (1 s) by a background thread, the redirect costs no store access at all
when its link is cached (``OMNIBANK_SHARE_CACHE_SECONDS``), and ``benchmarks/bench_share.py`` measures it.
The price: a server process killed hard loses the clicks of its last interval (at most 1 s of them; a
graceful stop writes them), and two server processes deduplicate a device between them only at write time
(each batch is checked against the clicks stored, so only two batches written at the same moment can both
count one device).
"""

from __future__ import annotations

import logging
import re
import secrets
import string
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from omnibank.audit import service as audit
from omnibank.benefits.models import Benefit
from omnibank.campaigns.models import Campaign
from omnibank.config import Settings
from omnibank.customers.values import EVENT_CHANNELS
from omnibank.db import unit_of_work
from omnibank.errors import ConfigError, InputRefused, NotFound
from omnibank.events.log import EventLog, sql_string
from omnibank.invites.codes import live_code
from omnibank.invites.models import TARGET_KINDS, InviteBinding, ShareClick, ShareLink
from omnibank.kit.crypto import FieldCipher
from omnibank.orgs import repository as orgs_repo
from omnibank.orgs.models import Org, Staff

log = logging.getLogger(__name__)

TOKEN_LENGTH = 10
TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_"  # URL-safe: 64¹⁰ ≈ 1.2 × 10¹⁸ tokens
TOKEN_PATTERN = re.compile(rf"^[A-Za-z0-9_-]{{{TOKEN_LENGTH}}}$")
TARGET_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
#: the target id of ``home`` when none is given (``--target home``)
HOME_ID = "index"
#: a device's clicks on one link within this long count once
DEDUPE = timedelta(seconds=60)
DEFAULT_CHANNEL = "wechat"
DEFAULT_LANDING: dict[str, str] = {
    "product": "{bank_url}/products/{id}",
    "campaign": "{bank_url}/campaigns/{id}",
    "benefit": "{public_url}/c/benefits/{id}",
    "scene": "{bank_url}/scenes/{id}",
    "home": "{bank_url}/",
}
_DEVICE_KIND = "share_device"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_BUFFER = 200_000  # clicks held while the store cannot be written; beyond it the oldest are dropped


def new_token() -> str:
    return "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))


# ------------------------------------------------------------------------------------------ making links


def parse_target(text: str) -> tuple[str, str]:
    """``KIND:ID`` (``benefit:luckin_coffee``, ``scene:car_loan``; ``home`` alone) → (kind, id), checked."""
    kind, sep, target_id = text.strip().partition(":")
    kind = kind.strip().lower()
    if kind == "home" and not sep:
        target_id = HOME_ID
    elif not sep:
        raise InputRefused(f"--target: {text!r} is not KIND:ID (e.g. benefit:luckin_coffee, scene:car_loan)")
    check_target(kind, target_id.strip())
    return kind, target_id.strip()


def check_target(kind: str, target_id: str) -> None:
    if kind not in TARGET_KINDS:
        raise InputRefused(f"--target: {kind!r} is not a target kind; use one of {'|'.join(TARGET_KINDS)}")
    if not TARGET_ID.fullmatch(target_id):
        raise InputRefused(
            f"--target: {target_id!r} is not a target id (1–64 of letters, digits, '_', '.', '-')"
        )


def check_channel(channel: str) -> str:
    channel = channel.strip().lower()
    if channel not in EVENT_CHANNELS:
        raise InputRefused(f"--channel: {channel!r} is not a channel; use one of {', '.join(EVENT_CHANNELS)}")
    return channel


def _check_exists(session: Session, kind: str, target_id: str) -> None:
    if kind == "benefit" and session.get(Benefit, target_id) is None:
        raise NotFound(f"no benefit {target_id} (see omnibank benefits list)")
    if kind == "campaign" and session.get(Campaign, target_id) is None:
        raise NotFound(f"no campaign {target_id} (see omnibank campaign list)")


def _sharer(session: Session, staff_id: str) -> Staff:
    staff = session.get(Staff, staff_id)
    if staff is None:
        raise NotFound(f"no staff member {staff_id} (load staff.csv first)")
    if staff.left_at is not None:
        raise InputRefused(f"{staff_id} has left the bank: no share links")
    if live_code(session, staff_id) is None:
        raise InputRefused(f"{staff_id} has no live invite code: issue one first (omnibank invites issue)")
    return staff


def make_link(
    session: Session, *, staff_id: str, kind: str, target_id: str, channel: str, now: datetime, actor: str
) -> ShareLink:
    """The staff member's link to the target for the channel, made the first time; each call counts one
    share (a link handed out, a poster made). One link per (staff, kind, target, channel): asking again
    returns the same token."""
    check_target(kind, target_id)
    channel = check_channel(channel)
    _sharer(session, staff_id)
    _check_exists(session, kind, target_id)
    key = (ShareLink.staff_id == staff_id, ShareLink.target_kind == kind, ShareLink.target_id == target_id,
           ShareLink.channel == channel)  # fmt: skip
    found = session.scalars(select(ShareLink.token).where(*key)).first()
    if found is None:
        try:
            with session.begin_nested():
                link = ShareLink(token=new_token(), staff_id=staff_id, target_kind=kind, target_id=target_id,
                                 channel=channel, shares=1, created_at=now, created_by=actor)  # fmt: skip
                session.add(link)
        except IntegrityError:  # made meanwhile by another request (or, once in 10¹⁸, a token drawn twice)
            found = session.scalars(select(ShareLink.token).where(*key)).first()
            if found is None:
                raise
        else:
            audit.record(session, actor=actor, action="share.link", subject_type="staff", subject_id=staff_id,
                         detail={"token": link.token, "target": f"{kind}:{target_id}", "channel": channel},
                         at=now)  # fmt: skip
            return link
    session.execute(update(ShareLink).where(ShareLink.token == found).values(shares=ShareLink.shares + 1))
    session.flush()
    counted = session.get(ShareLink, found)
    assert counted is not None
    session.refresh(counted)
    return counted


def link_url(settings: Settings, token: str) -> str:
    return f"{settings.public_url.rstrip('/')}/s/{token}"


# ---------------------------------------------------------------------------------------------- landing


@dataclass(frozen=True)
class Landing:
    """Where a link sends its visitor (the URL with its query parameters) and what a click records."""

    token: str
    staff_id: str
    channel: str
    url: str


def landing_url(settings: Settings, *, kind: str, target_id: str, code: str | None, token: str,
                channel: str) -> str:  # fmt: skip
    """The target's landing page with ``invite_code`` (when the staff member has a live code),
    ``share_token`` and ``channel`` added to its query."""
    template = {**DEFAULT_LANDING, **settings.share_landing}.get(kind)
    if template is None:
        raise ConfigError(f"OMNIBANK_SHARE_LANDING: no landing page for {kind!r}")
    try:
        url = template.format(id=target_id, public_url=settings.public_url.rstrip("/"),
                              bank_url=settings.share_bank_url.rstrip("/"))  # fmt: skip
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"OMNIBANK_SHARE_LANDING: the template of {kind!r} is not usable ({exc})") from None
    parts = urlsplit(url)
    params = ({"invite_code": code} if code else {}) | {"share_token": token, "channel": channel}
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def resolve(session: Session, settings: Settings, token: str) -> Landing | None:
    """The landing of ``token`` (None: no such link)."""
    if not TOKEN_PATTERN.fullmatch(token):
        return None
    link = session.get(ShareLink, token)
    if link is None:
        return None
    code = live_code(session, link.staff_id)
    url = landing_url(settings, kind=link.target_kind, target_id=link.target_id,
                      code=code.code if code else None, token=token, channel=link.channel)  # fmt: skip
    return Landing(token=token, staff_id=link.staff_id, channel=link.channel, url=url)


class LandingCache:
    """Token → landing, kept ``seconds`` (a revoked code leaves the redirect within that time)."""

    def __init__(self, seconds: float, *, max_entries: int = 100_000):
        self.seconds = seconds
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Landing]] = {}

    def get(self, token: str) -> Landing | None:
        hit = self._entries.get(token)
        if hit is None or time.monotonic() >= hit[0]:
            return None
        return hit[1]

    def put(self, landing: Landing) -> None:
        if self.seconds <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[landing.token] = (time.monotonic() + self.seconds, landing)


# ------------------------------------------------------------------------------------------------ clicks


def device_of(*, user_agent: str, address: str, cipher: FieldCipher) -> str:
    """A keyed hash of the browser and the client address (32 hex characters, the platform's blind index):
    the same device gives the same value, and nothing about the address can be read back without the key."""
    return cipher.blind_index(_DEVICE_KIND, f"{user_agent}\x1f{address}")


@dataclass(frozen=True)
class Click:
    token: str
    staff_id: str
    channel: str
    device: str
    at: datetime


def store_clicks(session: Session, clicks: Sequence[Click]) -> int:
    """Store the clicks that count (the same device on the same link once within :data:`DEDUPE`, against
    the clicks stored and within the batch); the number stored."""
    if not clicks:
        return 0
    ordered = sorted(clicks, key=lambda c: c.at)
    last: dict[tuple[str, str], datetime] = {}
    tokens = sorted({c.token for c in ordered})
    for i in range(0, len(tokens), 500):
        rows = session.execute(
            select(ShareClick.token, ShareClick.device, func.max(ShareClick.at))
            .where(ShareClick.token.in_(tokens[i : i + 500]), ShareClick.at > ordered[0].at - DEDUPE)
            .group_by(ShareClick.token, ShareClick.device)
        )
        for token, device, at in rows:
            last[(token, device)] = at
    counted = []
    for c in ordered:
        before = last.get((c.token, c.device))
        if before is not None and c.at - before < DEDUPE:
            continue
        last[(c.token, c.device)] = c.at
        counted.append({"token": c.token, "staff_id": c.staff_id, "channel": c.channel, "device": c.device,
                        "at": c.at})  # fmt: skip
    known = set(session.scalars(select(ShareLink.token).where(ShareLink.token.in_(tokens))))
    counted = [row for row in counted if row["token"] in known]
    if counted:
        session.execute(insert(ShareClick), counted)
    session.flush()
    return len(counted)


class ClickRecorder:
    """Clicks of a server process: counted once a minute per device and link in memory, held, and written
    in batches every ``interval`` seconds by a background thread (started with the first click) and when
    the process stops (:meth:`close`). See the module's note for what a crash loses."""

    def __init__(self, settings: Settings, *, interval: float):
        self.settings = settings
        self.interval = interval
        self._pending: list[Click] = []
        self._seen: dict[tuple[str, str], datetime] = {}
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, click: Click) -> bool:
        """Whether the click counts (it is then written at the next flush)."""
        key = (click.token, click.device)
        with self._lock:
            before = self._seen.get(key)
            if before is not None and click.at - before < DEDUPE and click.at >= before:
                return False
            if len(self._seen) >= 100_000:
                self._seen = {k: at for k, at in self._seen.items() if click.at - at < DEDUPE}
            self._seen[key] = click.at
            self._pending.append(click)
            if len(self._pending) > _MAX_BUFFER:
                del self._pending[: len(self._pending) - _MAX_BUFFER]
            if self._thread is None and self.interval > 0 and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="share-clicks", daemon=True)
                self._thread.start()
        if self.interval <= 0:
            self.flush()
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def flush(self) -> int:
        """Write the clicks held; the number stored. On a store error they are kept for the next flush."""
        with self._flushing:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return 0
            try:
                with unit_of_work(self.settings) as session:
                    return store_clicks(session, batch)
            except (
                Exception
            ) as exc:  # the store is down or busy: keep them (bounded) and say so, once a batch
                log.warning("share clicks not written yet (%d held): %s", len(batch), type(exc).__name__)
                with self._lock:
                    self._pending = (batch + self._pending)[-_MAX_BUFFER:]
                return 0

    def close(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=10)
        self.flush()


# ------------------------------------------------------------------------------------------------- stats


@dataclass(frozen=True)
class ShareStat:
    """One row of the figures: a staff member's (``by='staff'``) or a target's (``by='target'``)."""

    staff_id: str | None
    target_kind: str | None
    target_id: str | None
    links: int
    shares: int
    clicks: int
    unique_clickers: int
    bindings: int
    conversions: int

    @property
    def conversion_rate(self) -> Decimal:
        """Conversions ÷ unique clickers, to 4 places (0 when nobody clicked)."""
        if not self.unique_clickers:
            return Decimal("0")
        rate = Decimal(self.conversions) / Decimal(self.unique_clickers)
        return rate.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def _scoped_links(session: Session, org_id: str | None, staff_id: str | None) -> list[ShareLink]:
    stmt = select(ShareLink).order_by(ShareLink.staff_id, ShareLink.target_kind, ShareLink.target_id)
    if org_id is not None:
        if session.get(Org, org_id) is None:
            raise NotFound(f"no org {org_id} (see omnibank org tree)")
        orgs = sorted(orgs_repo.subtree_ids(session, org_id))
        stmt = stmt.where(ShareLink.staff_id.in_(select(Staff.staff_id).where(Staff.org_id.in_(orgs))))
    if staff_id is not None:
        if session.get(Staff, staff_id) is None:
            raise NotFound(f"no staff member {staff_id} (load staff.csv first)")
        stmt = stmt.where(ShareLink.staff_id == staff_id)
    return list(session.scalars(stmt))


def _converted(settings: Settings, bound: Iterable[tuple[str, datetime]], until: datetime | None) -> set[str]:
    """The customers of ``bound`` (customer, bound at) with a ``card.issued`` event at or after their
    binding (and before ``until``), read from the event log with DuckDB."""
    pairs = list(bound)
    events = EventLog(settings)
    if not pairs or not events.files():
        return set()
    values = ", ".join(f"({sql_string(c)}, {_micros(at)})" for c, at in pairs)
    before = f" AND epoch_us(e.ts) < {_micros(until)}" if until is not None else ""
    sql = (
        f"WITH bound(customer_id, bound_us) AS (VALUES {values}) "
        f"SELECT DISTINCT b.customer_id FROM bound b JOIN {events.scan_sql()} e "
        "ON e.customer_id = b.customer_id AND e.type = 'card.issued' "
        f"AND epoch_us(e.ts) >= b.bound_us{before}"
    )
    con = events.connect()
    try:
        return {str(row[0]) for row in con.execute(sql).fetchall()}
    finally:
        con.close()


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


@dataclass
class _Acc:
    links: int = 0
    shares: int = 0
    clicks: int = 0
    devices: set[str] = field(default_factory=set)
    bindings: int = 0
    conversions: int = 0


def stats(
    session: Session,
    settings: Settings,
    *,
    by: Literal["staff", "target"] = "staff",
    org_id: str | None = None,
    staff_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[ShareStat]:
    """Shares, clicks, unique clickers (distinct devices), bindings through the links, conversions (bound
    customers with a ``card.issued`` event at or after their binding) per staff member or per target, for
    the links of the staff in ``org_id``'s subtree (or of ``staff_id``, or everyone's).

    ``since``/``until`` (``since`` ≤ t < ``until``) bound the clicks, the bindings and the cards; ``shares``
    is a running count per link and is not bounded by them."""
    if by not in ("staff", "target"):
        raise InputRefused(f"--by: {by!r} is not staff or target")
    links = _scoped_links(session, org_id, staff_id)
    owner = {link.token: link for link in links}

    def key_of(link: ShareLink) -> tuple[str, ...]:
        return (link.staff_id,) if by == "staff" else (link.target_kind, link.target_id)

    tokens = sorted(owner)
    clicks: dict[str, list[tuple[str, int]]] = {}  # token → (device, clicks)
    bindings: list[tuple[str, str, datetime]] = []  # (token, customer, bound at)
    for i in range(0, len(tokens), 500):
        chunk = tokens[i : i + 500]
        stmt = (
            select(ShareClick.token, ShareClick.device, func.count())
            .where(ShareClick.token.in_(chunk))
            .group_by(ShareClick.token, ShareClick.device)
        )
        bstmt = select(InviteBinding.share_token, InviteBinding.customer_id, InviteBinding.bound_at).where(
            InviteBinding.share_token.in_(chunk)
        )
        if since is not None:
            stmt, bstmt = stmt.where(ShareClick.at >= since), bstmt.where(InviteBinding.bound_at >= since)
        if until is not None:
            stmt, bstmt = stmt.where(ShareClick.at < until), bstmt.where(InviteBinding.bound_at < until)
        for token, device, n in session.execute(stmt):
            clicks.setdefault(token, []).append((device, int(n)))
        bindings += [(t, c, at) for t, c, at in session.execute(bstmt) if t is not None]
    converted = _converted(settings, [(c, at) for _, c, at in bindings], until)

    groups: dict[tuple[str, ...], _Acc] = {}
    for link in links:
        acc = groups.setdefault(key_of(link), _Acc())
        acc.links += 1
        acc.shares += int(link.shares)
        for device, n in clicks.get(link.token, []):
            acc.clicks += n
            acc.devices.add(device)
    for token, customer, _at in bindings:
        acc = groups[key_of(owner[token])]
        acc.bindings += 1
        acc.conversions += customer in converted
    return [
        ShareStat(
            staff_id=key[0] if by == "staff" else None,
            target_kind=key[0] if by == "target" else None,
            target_id=key[1] if by == "target" else None,
            links=acc.links,
            shares=acc.shares,
            clicks=acc.clicks,
            unique_clickers=len(acc.devices),
            bindings=acc.bindings,
            conversions=acc.conversions,
        )
        for key, acc in sorted(groups.items())
    ]


POSTER_TITLES = {
    "product": "好产品，邀您体验",
    "campaign": "精彩活动，邀您参加",
    "benefit": "专属权益，邀您领取",
    "scene": "专享优惠，轻松办理",
    "home": "欢迎您，扫码了解更多",
}


def poster_texts(session: Session, kind: str, target_id: str) -> tuple[str, str]:
    """A poster's default title and subtitle: a headline for the kind, and the benefit's or campaign's name
    (nothing personal)."""
    subtitle = ""
    if kind == "benefit":
        benefit = session.get(Benefit, target_id)
        subtitle = benefit.name if benefit else ""
    elif kind == "campaign":
        campaign = session.get(Campaign, target_id)
        subtitle = campaign.name if campaign else ""
    return POSTER_TITLES[kind], subtitle
