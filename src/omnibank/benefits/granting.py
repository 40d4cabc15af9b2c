"""Granting one item into the coupon ledger: :func:`grant`, the path every grant can take.

A grant under a deterministic key, once, inside a SAVEPOINT: the coupon, its stock, budgets, caps, its
first history row (and the points of a points benefit) together or nothing. The API issues coupons here,
and the batch path (``batch.py``) falls back to it item by item, so it is the one that defines what a grant
does; it is apart from the catalogue and the stock, which it only reads and counts on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from omnibank.benefits import ledger
from omnibank.benefits.catalogue import find_benefit
from omnibank.benefits.ledger import BudgetKey, CapKey, coupon_read
from omnibank.benefits.models import BenefitFaceValue, Coupon, CouponEvent, Supplier
from omnibank.benefits.schemas import CouponRead
from omnibank.benefits.stock import count_stock_out_of
from omnibank.config import get_settings
from omnibank.errors import AppError, Conflict


@dataclass(frozen=True)
class GrantResult:
    """``granted``: a new coupon; ``duplicate``: the key was granted before (that coupon, nothing issued);
    ``refused``: nothing written but the stock-out count, ``reason`` says why (``out_of_stock``,
    ``budget_exhausted:<budget>``, ``cap:<scope>:<period>``, ``supplier_suspended``, ``benefit_inactive``)."""

    outcome: Literal["granted", "duplicate", "refused"]
    coupon: CouponRead | None = None
    reason: str | None = None
    budgets: tuple[str, ...] = ()  # the budgets this grant was counted against

    @property
    def issued(self) -> bool:
        return self.outcome == "granted"


class Refused(Exception):
    """A grant refused half-way: its SAVEPOINT is rolled back (``reason`` as in :class:`GrantResult`)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _end_of_day(d: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(d, time(23, 59, 59), tz)


def aware(name: str, value: datetime | None) -> datetime | None:
    """``value`` as given; a naive datetime is refused (both grant paths check every moment)."""
    if value is not None and value.tzinfo is None:
        raise AppError(f"{name}: a naive datetime is refused; give a time zone")
    return value


def _duplicate(existing: Any, customer_id: str, benefit_id: str) -> GrantResult:
    if (existing.customer_id, existing.benefit_id) != (customer_id, benefit_id):
        raise Conflict(
            f"grant key {existing.grant_key!r} was used for {existing.benefit_id} to {existing.customer_id}; "
            "a key names one item"
        )
    return GrantResult("duplicate", coupon_read(existing))


_COUPONS = cast(Table, Coupon.__table__)
_EVENTS = cast(Table, CouponEvent.__table__)


def grant(
    session: Session,
    *,
    key: str,
    campaign: str,
    rule: str,
    customer_id: str,
    benefit_id: str,
    face_value_fen: int | None = None,
    tier: str | None = None,
    discount_rate: Decimal | None = None,
    stage: int | None = None,
    branch_id: str | None = None,
    granted_at: datetime | None = None,
    claim_by: datetime | None = None,
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
    budgets: Sequence[BudgetKey] = (),
    caps: Sequence[CapKey] = (),
    tz: ZoneInfo | None = None,
    actor: str = "system:grant",
) -> GrantResult:
    """Issue one item under a deterministic ``key`` in one step of the caller's transaction.

    The key granted before → that coupon (``duplicate``), nothing issued twice, even when two transactions
    grant the same key at once (the unique key decides). Otherwise, inside a SAVEPOINT: the coupon row, one
    item of stock (tracked benefits), one item and its face value from every budget given that is defined
    (in id order), one from every cap, the coupon's first history row and, for a points benefit, the points
    credited. Any refusal rolls the savepoint back, so nothing is half written.

    Face value: ``face_value_fen`` if given, else the catalogue's for ``tier``, else its default. Claim and
    validity windows default from the catalogue's validity (claim until the end of grant day + claim_days,
    valid until the end of the first valid day + valid_days, bank-local)."""
    if not key or len(key) > 300:
        raise AppError("grant: a key of 1 to 300 characters is needed")
    for name, value in (
        ("granted_at", granted_at),
        ("claim_by", claim_by),
        ("valid_from", valid_from),
        ("valid_to", valid_to),
    ):
        aware(name, value)
    existing = session.execute(select(_COUPONS).where(_COUPONS.c.grant_key == key)).first()
    if existing is not None:
        return _duplicate(existing, customer_id, benefit_id)
    benefit = find_benefit(session, benefit_id)
    if benefit.status != "active":
        return GrantResult("refused", reason="benefit_inactive")
    if benefit.supplier_id:  # read afresh: a suspension committed meanwhile counts
        status = session.scalar(select(Supplier.status).where(Supplier.id == benefit.supplier_id))
        if status == "suspended":
            return GrantResult("refused", reason="supplier_suspended")

    zone = tz or get_settings().tz
    at = granted_at or datetime.now(UTC)
    if face_value_fen is None:
        override = session.get(BenefitFaceValue, (benefit_id, tier)) if tier else None
        face_value_fen = override.face_value_fen if override else benefit.face_value_fen
    if face_value_fen < 0:
        raise AppError("grant: a face value cannot be negative")
    rate = discount_rate if discount_rate is not None else benefit.discount_rate
    start = valid_from or at
    claim_by, valid_to = default_windows(
        benefit.claim_days, benefit.valid_days, at, start, claim_by, valid_to, zone
    )
    charged: list[str] = []
    try:
        with session.begin_nested():
            values = {
                "grant_key": key,
                "campaign": campaign,
                "rule": rule,
                "customer_id": customer_id,
                "benefit_id": benefit_id,
                "branch_id": branch_id,
                "face_value_fen": face_value_fen,
                "discount_rate": rate,
                "stage": stage,
                "status": "redeemed" if benefit.type == "points" else "granted",  # points: credited on grant
                "granted_at": at,
                "claim_by": claim_by,
                "valid_from": start,
                "valid_to": valid_to,
                "status_at": at,
            }
            # the unique key: a concurrent grant of the same key waits here, then fails
            coupon = session.execute(insert(_COUPONS).values(values).returning(*_COUPONS.c)).one()
            if benefit.stock_tracked and not ledger.take_stock(session, benefit_id):
                raise Refused("out_of_stock")
            for budget_id in sorted({b.id for b in budgets}):
                taken = ledger.take_budget(session, budget_id, face_value_fen=face_value_fen)
                if taken is False:
                    raise Refused(f"budget_exhausted:{budget_id}")
                if taken:
                    charged.append(budget_id)
            for cap in sorted(set(caps)):
                if not ledger.take_cap(
                    session, scope=cap.scope, customer_id=customer_id, period=cap.period, limit=cap.limit
                ):
                    raise Refused(f"cap:{cap.scope}:{cap.period}")
            history: list[tuple[str, str | None, str]] = [("grant", None, "granted")]
            if benefit.type == "points":
                assert benefit.points is not None
                ledger.earn(
                    session,
                    customer_id=customer_id,
                    amount=benefit.points,
                    key=f"grant:{key}",
                    now=at,
                    reference=f"coupon:{coupon.id} {benefit_id}",
                )
                history.append(("redeem", "granted", "redeemed"))
            grant_detail = json.dumps({"key": key}, ensure_ascii=False)
            events = [
                {"coupon_id": coupon.id, "action": action, "from_status": before, "to_status": after,
                 "at": at, "actor": actor, "detail": grant_detail if action == "grant" else "{}"}
                for action, before, after in history
            ]  # fmt: skip
            session.execute(insert(_EVENTS), events)
    except Refused as refusal:
        if refusal.reason == "out_of_stock":
            count_stock_out_of(session, benefit, at, zone)
        return GrantResult("refused", reason=refusal.reason)
    except IntegrityError:
        found = session.execute(select(_COUPONS).where(_COUPONS.c.grant_key == key)).first()
        if found is None:
            raise
        return _duplicate(found, customer_id, benefit_id)
    return GrantResult("granted", coupon_read(coupon), budgets=tuple(charged))


def default_windows(
    claim_days: int | None,
    valid_days: int | None,
    at: datetime,
    start: datetime,
    claim_by: datetime | None,
    valid_to: datetime | None,
    zone: ZoneInfo,
) -> tuple[datetime | None, datetime | None]:
    """The claim and validity windows, defaulting from the catalogue's validity: claim until the end of
    grant day + ``claim_days``, valid until the end of the first valid day + ``valid_days`` (bank-local),
    unless given."""
    if claim_by is None and claim_days is not None:
        claim_by = _end_of_day(at.astimezone(zone).date() + timedelta(days=claim_days), zone)
    if valid_to is None and valid_days is not None:
        valid_to = _end_of_day(start.astimezone(zone).date() + timedelta(days=valid_days), zone)
    return claim_by, valid_to


def list_coupons(
    session: Session,
    *,
    customer_id: str | None = None,
    campaign: str | None = None,
    status: str | None = None,
    limit: int = 200,
) -> list[CouponRead]:
    stmt = select(Coupon)
    if customer_id:
        stmt = stmt.where(Coupon.customer_id == customer_id)
    if campaign:
        stmt = stmt.where(Coupon.campaign == campaign)
    if status:
        stmt = stmt.where(Coupon.status == status)
    return [coupon_read(c) for c in session.scalars(stmt.order_by(Coupon.granted_at, Coupon.id).limit(limit))]
