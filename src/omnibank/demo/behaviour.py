"""How the demo bank's customers, staff and suppliers behave over its year: deterministic decisions only.

Nothing here touches the store. Each decision is a pure function of the seed and the thing decided about (a
coupon's grant key, a lead's id, a supplier and a month), through :func:`share`, so the same seed gives the
same bank whatever the order things are looked at in, and no wall clock is read: every moment is derived
from the moment of the thing itself (a coupon's grant, a lead's creation) and stays inside the demo's year.
The shares are a bank operations manager's plausible figures, not measurements.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

#: per benefit: the share of coupons customers claim, and the share of claimed ones they use. Kept low:
#: each claim and redemption is one audited call of the coupon ledger (~1.8 ms of CPU on SQLite), and a
#: year of the 20,000-customer bank grants ~27,000 coupons; most lapse, and the sweep expires them.
COUPON_HABITS: dict[str, tuple[float, float]] = {
    "luckin_voucher": (0.05, 0.75),
    "blind_box": (0.25, 0.90),
    "installment_discount": (0.04, 0.35),
    "instant_discount_10": (0.06, 0.70),
    "video_membership_9yuan": (0.05, 0.85),
}
DEFAULT_HABIT = (0.05, 0.60)
#: per campaign rule, where it differs: the co-brand card's welcome gift is claimed by many new holders
RULE_HABITS: dict[str, tuple[float, float]] = {"welcome": (0.30, 0.80)}

#: a supplier's share of failed issues (one coupon code it could not issue), by supplier
FAILED_ISSUES = {"luckin": 0.0008, "quanyi": 0.06}
FAILED_REASONS = ("发码接口超时", "会员账号校验失败", "库存同步延迟")


def share(seed: int, *parts: object) -> float:
    """A number in [0, 1), fixed by the seed and ``parts``."""
    text = ":".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


def _between(seed: int, low: timedelta, high: timedelta, *parts: object) -> timedelta:
    return low + (high - low) * share(seed, "delay", *parts)


def working_hours(moment: datetime, tz: ZoneInfo) -> datetime:
    """``moment`` moved into the bank's working hours (09:00–18:00 bank-local): a person does it."""
    local = moment.astimezone(tz)
    if local.hour < 9:
        return datetime.combine(local.date(), time(9, local.minute), tz)
    if local.hour >= 18:
        return datetime.combine(local.date() + timedelta(days=1), time(9, local.minute), tz)
    return local


# ------------------------------------------------------------------------------------------------ coupons


@dataclass(frozen=True)
class CouponFacts:
    """What a customer's decision about a coupon depends on."""

    coupon_id: int
    key: str
    rule: str
    benefit_id: str
    supplier_id: str | None
    granted_at: datetime
    claim_by: datetime | None
    valid_from: datetime
    valid_to: datetime | None


@dataclass(frozen=True, order=True)
class CouponMove:
    """A customer's move on a coupon at a moment: ``claim`` or ``redeem``."""

    at: datetime
    coupon_id: int
    action: str


SWEEP_AT = time(0, 30)


def sweep_days(first: date, last: date) -> list[date]:
    """The days the coupon sweep runs on (at :data:`SWEEP_AT`): each month's first day. (Each sweep reads
    every coupon; monthly is enough to activate the welcome vouchers that take effect on the 1st.)"""
    days, day = [], first.replace(day=1)
    while day <= last:
        if day >= first:
            days.append(day)
        day = (day + timedelta(days=32)).replace(day=1)
    return days


def next_sweep(after: datetime, tz: ZoneInfo) -> datetime:
    """The first sweep at or after ``after``."""
    first = after.astimezone(tz).date().replace(day=1)
    moment = datetime.combine(first, SWEEP_AT, tz)
    if moment < after:
        moment = datetime.combine((first + timedelta(days=32)).replace(day=1), SWEEP_AT, tz)
    return moment


def coupon_moves(seed: int, c: CouponFacts, *, until: datetime, tz: ZoneInfo) -> list[CouponMove]:
    """Whether the customer claims the coupon, and uses it, and when: inside its windows and before
    ``until`` (moves that would come later do not happen yet). A coupon claimed before it takes effect (a
    welcome voucher of a later month) is used after the sweep that activates it; one whose code the
    supplier failed to issue (:func:`issue_failed`) is never used."""
    claim_share, redeem_share = RULE_HABITS.get(c.rule) or COUPON_HABITS.get(c.benefit_id, DEFAULT_HABIT)
    if share(seed, "claim", c.key) >= claim_share:
        return []
    last_claim = min(c.claim_by or c.granted_at + timedelta(days=30), until)
    claim_at = c.granted_at + _between(seed, timedelta(minutes=20), timedelta(days=6), "claim", c.key)
    claim_at = min(claim_at, last_claim - timedelta(minutes=1))
    if claim_at <= c.granted_at:
        return []
    moves = [CouponMove(claim_at, c.coupon_id, "claim")]
    failed = c.supplier_id is not None and issue_failed(seed, c.supplier_id, c.coupon_id) is not None
    if failed or share(seed, "redeem", c.key) >= redeem_share:
        return moves
    usable_from = claim_at if c.valid_from <= claim_at else next_sweep(c.valid_from, tz)
    last_use = min(c.valid_to or usable_from + timedelta(days=30), until)
    redeem_at = usable_from + _between(seed, timedelta(minutes=30), timedelta(days=9), "redeem", c.key)
    redeem_at = min(redeem_at, last_use - timedelta(minutes=1))
    if redeem_at > usable_from:
        moves.append(CouponMove(redeem_at, c.coupon_id, "redeem"))
    return moves


def issue_failed(seed: int, supplier_id: str, coupon_id: int) -> str | None:
    """The supplier's result of issuing a claimed coupon: None when it was issued, else why it failed."""
    u = share(seed, "issue", supplier_id, coupon_id)
    if u >= FAILED_ISSUES.get(supplier_id, 0.01):
        return None
    return FAILED_REASONS[int(share(seed, "issue-reason", coupon_id) * len(FAILED_REASONS))]


# -------------------------------------------------------------------------------------------------- leads


@dataclass(frozen=True, order=True)
class LeadMove:
    """A member of staff's follow-up of a lead at a moment."""

    at: datetime
    lead_id: str
    status: str  # contacted, won or lost
    note: str


NOTES = {
    "contacted": "已电话联系客户, 介绍产品并约定到店面谈",
    "won": "客户已到店签约购买",
    "lost": "客户暂无需求, 已记录意向",
}


def lead_moves(seed: int, lead_id: str, created_at: datetime, tz: ZoneInfo) -> list[LeadMove]:
    """How staff follow a lead up: most contact the customer within two days, some late (after the lead
    was escalated), a few close it at once as lost, the rest never get to it; of those contacted, some
    win, some lose, the rest are still in progress."""
    u = share(seed, "lead", lead_id)
    if u < 0.55:
        contact = created_at + _between(seed, timedelta(hours=2), timedelta(hours=30), "contact", lead_id)
    elif u < 0.70:
        contact = created_at + _between(seed, timedelta(days=3), timedelta(days=7), "contact", lead_id)
    elif u < 0.76:
        lost = working_hours(created_at + timedelta(days=1), tz)
        return [LeadMove(lost, lead_id, "lost", NOTES["lost"])]
    else:
        return []
    contacted = working_hours(contact, tz)
    moves = [LeadMove(contacted, lead_id, "contacted", NOTES["contacted"])]
    v = share(seed, "outcome", lead_id)
    if v < 0.65:
        status = "won" if v < 0.40 else "lost"
        later = contacted + _between(seed, timedelta(hours=6), timedelta(days=6), "outcome", lead_id)
        moves.append(LeadMove(working_hours(later, tz), lead_id, status, NOTES[status]))
    return moves


# ---------------------------------------------------------------------------------------------- suppliers


def supplier_count(
    seed: int, supplier_id: str, benefit_id: str, ours: int, month: date, *, off_from: date
) -> int:
    """The stock a supplier reports for a benefit at a month's end: ours, except that 权益供应商's counts
    drift from ``off_from`` on (codes it delivered late or twice)."""
    if supplier_id != "quanyi" or month < off_from:
        return ours
    drift = 5 + int(share(seed, "drift", benefit_id, month.isoformat()) * 60)
    return max(0, ours + drift if share(seed, "sign", benefit_id, month.isoformat()) < 0.5 else ours - drift)


#: the share of a month's need a supplier delivers when the bank reorders (权益供应商 delivers the last
#: month's video memberships short: the stock runs out before the year ends)
SHORT_DELIVERY = 0.5
