"""The API's coupon issue, claim and redeem on PostgreSQL in one round trip each: the fast path.

The general path (``service.grant``, ``ledger.claim``/``redeem`` through the ORM) spends a dozen statements
on an issue, and the stock and budget rows every issue updates stay locked across the round trips between
them, so concurrent issues queue on those rows for as long as the slowest API thread takes to come back.
Here each operation is one call of a PostgreSQL function (migration 0013) in its own transaction: the hot
rows are held only while the function runs.

The fast path does the common case or nothing. The function raises SQLSTATE ``OB001`` at anything out of
the ordinary (a duplicate grant key, stock or a budget used up, a suspended supplier, a coupon in another
state or not the caller's, a key used before); its statement rolls back and ``Declined`` tells the caller
to take the general path, which decides afresh and answers as it always did. So the answers are the
general path's by construction; ``tests/api/test_fastpath.py`` checks both paths side by side.

One :class:`FastPath` (an async connection pool) per API server process, opened in the app's lifespan when
the store is PostgreSQL; on SQLite there is none and the API takes the general path.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.engine import make_url

from omnibank.benefits.granting import default_windows
from omnibank.benefits.ledger import BudgetKey
from omnibank.benefits.schemas import CouponRead

DECLINED = "OB001"

_TERMS = (
    "SELECT face_value_fen, discount_rate, claim_days, valid_days FROM benefits "
    "WHERE id = %s AND status = 'active' AND type <> 'points'"
)
_IDS = "SELECT nextval(pg_get_serial_sequence('coupons', 'id')) FROM generate_series(1, %s)"
#: coupon ids a process takes from the sequence at a time (ids stay unique; their order is not the order of
#: issue across processes, which nothing relies on: lists order by time)
ID_BLOCK = 100
#: how long a process prices issues of a benefit by the terms it read (the grant function checks they
#: still hold and declines if not; the terms are then read again)
TERMS_SECONDS = 5.0
_GRANT = "SELECT omnibank_grant_fast(" + ", ".join(["%s"] * 26) + ")"
_MOVE = "SELECT * FROM omnibank_coupon_move(" + ", ".join(["%s"] * 13) + ")"
_STORE = "UPDATE idempotency_keys SET response_status = %s, response_body = %s WHERE actor = %s AND key = %s"


class Declined(Exception):
    """The fast path did nothing: take the general path."""


@dataclass(frozen=True)
class Idem:
    """An Idempotency-Key as the general path keeps it: per actor, with the request's digest; a stored key
    created before ``cutoff`` has expired."""

    actor: str
    key: str
    digest: str
    cutoff: datetime


@dataclass(frozen=True)
class Terms:
    """A benefit's terms as an issue prices it (the function checks they still hold) and the new coupon's
    id, taken from the coupons' sequence."""

    coupon_id: int
    face_value_fen: int
    discount_rate: Decimal | None
    claim_days: int | None
    valid_days: int | None


def conninfo(db_url: str) -> str:
    """A libpq connection string for an SQLAlchemy ``postgresql+psycopg://`` URL."""
    return make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC)


def _read(row: dict[str, Any]) -> CouponRead:
    """A coupons row as the general path reads it (its times in UTC)."""
    return CouponRead(
        id=row["id"], grant_key=row["grant_key"], campaign=row["campaign"], rule=row["rule"],
        customer_id=row["customer_id"], benefit_id=row["benefit_id"], branch_id=row["branch_id"],
        face_value_fen=row["face_value_fen"], discount_rate=row["discount_rate"], stage=row["stage"],
        status=row["status"], granted_at=row["granted_at"].astimezone(UTC), claim_by=_utc(row["claim_by"]),
        valid_from=row["valid_from"].astimezone(UTC), valid_to=_utc(row["valid_to"]),
        status_at=row["status_at"].astimezone(UTC),
    )  # fmt: skip


def _declined(exc: psycopg.Error) -> bool:
    return exc.sqlstate == DECLINED


class FastPath:
    """An async pool of ``size`` connections (autocommit: each call is its own transaction)."""

    def __init__(self, db_url: str, *, size: int):
        self.pool = AsyncConnectionPool(
            conninfo(db_url), min_size=size, max_size=size, open=False,
            kwargs={"autocommit": True},
        )  # fmt: skip
        #: what this process's fast path did (issue, claim, redeem) and declined (by the function's word)
        self.served: Counter[str] = Counter()
        self.declined: Counter[str] = Counter()
        self._terms: dict[str, tuple[float, dict[str, Any]]] = {}
        self._ids: list[int] = []
        self._reading: set[str] = set()  # benefits whose terms are being read

    async def open(self) -> None:
        await self.pool.open(wait=True, timeout=30)

    async def close(self) -> None:
        await self.pool.close()

    # ------------------------------------------------------------------------------------------- issue

    async def terms(self, benefit_id: str) -> Terms | None:
        """The benefit's terms and a coupon id; None when it is not active, points or unknown (the general
        path says why). Terms older than ``TERMS_SECONDS`` are read again in the background while the old
        ones serve (safe: the grant function declines terms that no longer hold), so issues never queue
        behind the read."""
        hit = self._terms.get(benefit_id)
        if hit is None:
            row = await self._read_terms(benefit_id)
            if row is None:
                return None
        else:
            row = hit[1]
            if time.monotonic() >= hit[0] and benefit_id not in self._reading:
                reading = asyncio.ensure_future(self._read_terms(benefit_id))
                reading.add_done_callback(lambda done: done.cancelled() or done.exception())
        if not self._ids:
            async with self.pool.connection() as conn:
                rows = await (await conn.execute(_IDS, (ID_BLOCK,))).fetchall()
            self._ids.extend(int(r[0]) for r in reversed(rows))
        return Terms(coupon_id=self._ids.pop(), **row)

    async def _read_terms(self, benefit_id: str) -> dict[str, Any] | None:
        self._reading.add(benefit_id)
        try:
            async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                row = await (await cur.execute(_TERMS, (benefit_id,))).fetchone()
        finally:
            self._reading.discard(benefit_id)
        if row is None:
            self._terms.pop(benefit_id, None)
            return None
        if len(self._terms) >= 10_000:
            self._terms.clear()
        self._terms[benefit_id] = (time.monotonic() + TERMS_SECONDS, row)
        return row

    def forget_terms(self, benefit_id: str) -> None:
        self._terms.pop(benefit_id, None)

    def _decline(self, exc: psycopg.Error) -> Declined:
        reason = exc.diag.message_primary or "declined"
        self.declined[reason] += 1
        return Declined(reason)

    @staticmethod
    def planned(
        terms: Terms, *, key: str, campaign: str, rule: str, customer_id: str, benefit_id: str,
        at: datetime, zone: ZoneInfo,
    ) -> CouponRead:  # fmt: skip
        """The coupon an issue at ``at`` makes, as the general path would read it back."""
        claim_by, valid_to = default_windows(terms.claim_days, terms.valid_days, at, at, None, None, zone)
        moment = at.astimezone(UTC)
        return CouponRead(
            id=terms.coupon_id, grant_key=key, campaign=campaign, rule=rule, customer_id=customer_id,
            benefit_id=benefit_id, branch_id=None, face_value_fen=terms.face_value_fen,
            discount_rate=terms.discount_rate, stage=None, status="granted", granted_at=moment,
            claim_by=_utc(claim_by), valid_from=moment, valid_to=_utc(valid_to), status_at=moment,
        )  # fmt: skip

    async def grant(
        self,
        coupon: CouponRead,
        terms: Terms,
        *,
        actor: str,
        orgs: Sequence[str] | None,
        idem: Idem | None,
        response: str,
        source: str,
        audit_detail: str,
        mac: str,
        rm: str | None = None,
    ) -> None:
        """Issue ``coupon`` (from :meth:`planned`) with its stock and the budgets defined for its campaign and
        rule, and its audit entry (``coupon.grant`` from ``source``, with ``audit_detail`` and the entry's
        ``mac``); with ``idem`` the key stores ``response`` (201). The caller sees the customers of ``orgs``
        (None: the whole bank), or as the RM ``rm`` their own and the unassigned ones of ``orgs`` (管户).
        Declined: nothing was written."""
        budgets = sorted({BudgetKey(coupon.campaign).id, BudgetKey(coupon.campaign, rule=coupon.rule).id})
        detail = json.dumps({"key": coupon.grant_key}, ensure_ascii=False)
        params = (
            coupon.id, coupon.grant_key, coupon.campaign, coupon.rule, coupon.customer_id, coupon.benefit_id,
            terms.face_value_fen, terms.discount_rate, terms.claim_days, terms.valid_days, coupon.granted_at,
            coupon.claim_by, coupon.valid_to, actor, detail, budgets, None if orgs is None else list(orgs),
            idem.actor if idem else None, idem.key if idem else None, idem.digest if idem else None,
            idem.cutoff if idem else None, response, source, audit_detail, mac, rm,
        )  # fmt: skip
        try:
            async with self.pool.connection() as conn:
                await conn.execute(_GRANT, params)
        except psycopg.Error as exc:
            if not _declined(exc):
                raise
            declined = self._decline(exc)
            if str(declined) == "benefit_changed":
                self.forget_terms(coupon.benefit_id)
            raise declined from None
        self.served["issue"] += 1

    # -------------------------------------------------------------------------------- claim and redeem

    async def move(
        self,
        coupon_id: int,
        action: str,
        *,
        now: datetime,
        actor: str,
        orgs: Sequence[str] | None,
        supplier: str | None,
        source: str,
        idem: Idem | None,
        respond: Callable[[CouponRead], str],
        mac: str,
        rm: str | None = None,
    ) -> CouponRead:
        """Claim or redeem a coupon the caller may act on (a supplier: its own benefits' coupons; staff:
        their customers'), with its history and audit entry (carrying ``mac``, the application's MAC of all
        but its detail, which the database reads from the coupon); ``orgs`` and ``rm`` as for :meth:`grant`.
        With ``idem`` the key keeps
        ``respond(coupon)`` (200), in the same transaction. Declined: nothing was written."""
        params = (
            coupon_id, action, now, actor, None if orgs is None else list(orgs), supplier, source,
            idem.actor if idem else None, idem.key if idem else None, idem.digest if idem else None,
            idem.cutoff if idem else None, mac, rm,
        )  # fmt: skip
        try:
            async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                if idem is None:
                    row = await (await cur.execute(_MOVE, params)).fetchone()
                    assert row is not None
                    coupon = _read(row)
                else:
                    async with conn.transaction():
                        row = await (await cur.execute(_MOVE, params)).fetchone()
                        assert row is not None
                        coupon = _read(row)
                        await cur.execute(_STORE, (200, respond(coupon), idem.actor, idem.key))
        except psycopg.Error as exc:
            if not _declined(exc):
                raise
            raise self._decline(exc) from None
        self.served[action] += 1
        return coupon
