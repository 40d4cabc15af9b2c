"""A benefit as a customer sees it on its page (``/c/benefits/<id>``), and claiming it there: the read and the
write the customer-facing page makes, kept with the benefits (the console only renders them).

Only an active benefit faces customers (it has its usage instructions and redemption steps, B1). A page that
knows its customer (a signed link) learns only whether they are 60 or more (for elder mode) and their latest
coupon of the benefit; nothing personal. A claim issues a coupon under a key of the customer and the benefit,
so a second claim issues nothing, counted under the campaign ``self_service`` and rule ``benefit_page``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from omnibank.audit import service as audit
from omnibank.benefits import granting, ledger
from omnibank.benefits.models import Benefit, Coupon, Supplier
from omnibank.benefits.schemas import CouponRead
from omnibank.config import Settings
from omnibank.customers.models import Customer
from omnibank.customers.values import age_on
from omnibank.errors import AppError, NotFound

ELDER_AGE = 60
CAMPAIGN = "self_service"  # the campaign and rule a claim from a benefit's page is counted under
RULE = "benefit_page"


@dataclass(frozen=True)
class BenefitView:
    """What a customer is shown of a catalogue entry (all of it comes from the catalogue)."""

    id: str
    name: str
    type: str
    face_value_fen: int
    discount_rate: Decimal | None
    points: int | None
    supplier: str | None
    instructions: str
    steps: tuple[str, ...]
    valid_days: int | None
    claim_days: int | None


@dataclass(frozen=True)
class Visit:
    """The benefit, and what this visitor may do with it: ``customer_id`` None for a visitor the page does not
    know; ``senior`` whether that customer is 60 or more; ``coupon`` their latest coupon of the benefit."""

    benefit: BenefitView
    customer_id: str | None
    senior: bool
    coupon: CouponRead | None


class NotOffered(NotFound):
    """No such benefit, or not one that faces customers (not active)."""


def _steps(raw: str) -> tuple[str, ...]:
    try:
        steps = json.loads(raw or "[]")
    except ValueError:
        return ()
    return tuple(str(s) for s in steps if str(s).strip()) if isinstance(steps, list) else ()


def read_visit(
    session: Session, benefit_id: str, customer_id: str | None, now: datetime, settings: Settings
) -> Visit:
    """The benefit (only an active one faces customers: it has its instructions and steps) and the visitor's
    standing: a few primary-key or indexed reads. The age is computed and kept to a yes/no."""
    benefit = session.get(Benefit, benefit_id)
    if benefit is None or benefit.status != "active":
        raise NotOffered(f"no benefit {benefit_id} on offer")
    supplier = session.get(Supplier, benefit.supplier_id) if benefit.supplier_id else None
    view = BenefitView(
        id=benefit.id, name=benefit.name, type=benefit.type, face_value_fen=benefit.face_value_fen,
        discount_rate=benefit.discount_rate, points=benefit.points,
        supplier=supplier.name if supplier else None,
        instructions=benefit.usage_instructions, steps=_steps(benefit.redemption_steps),
        valid_days=benefit.valid_days, claim_days=benefit.claim_days,
    )  # fmt: skip
    senior, coupon = False, None
    if customer_id is not None:
        row = session.execute(
            select(Customer.birth_date, Customer.erased_at).where(Customer.customer_id == customer_id)
        ).first()
        if row is None or row.erased_at is not None:
            customer_id = None
        else:
            senior = age_on(row.birth_date, now.astimezone(settings.tz).date()) >= ELDER_AGE
            coupon = _latest_coupon(session, customer_id, benefit_id)
    return Visit(view, customer_id, senior, coupon)


def _latest_coupon(session: Session, customer_id: str, benefit_id: str) -> CouponRead | None:
    found = session.scalars(
        select(Coupon)
        .where(Coupon.customer_id == customer_id, Coupon.benefit_id == benefit_id)
        .order_by(Coupon.granted_at.desc(), Coupon.id.desc())
        .limit(1)
    ).first()
    return ledger.coupon_read(found) if found is not None else None


def claim_benefit(
    session: Session, benefit_id: str, customer_id: str, *, now: datetime, settings: Settings, source: str
) -> tuple[CouponRead | None, str | None]:
    """The customer claims the benefit: a coupon granted to them before (by a campaign) is claimed; else one
    is issued under a key of the customer and the benefit (a second claim finds it and issues nothing) and
    claimed. (coupon, None), or (None, the reason it was refused)."""
    actor = f"customer:{customer_id}"
    coupon = _latest_coupon(session, customer_id, benefit_id)
    if coupon is None:
        result = granting.grant(
            session, key=f"public:{customer_id}:{benefit_id}", campaign=CAMPAIGN, rule=RULE,
            customer_id=customer_id, benefit_id=benefit_id, granted_at=now, tz=settings.tz, actor=actor,
            budgets=ledger.defined_budgets(session, CAMPAIGN, RULE),
        )  # fmt: skip
        if result.coupon is None:
            return None, result.reason
        coupon = result.coupon
        if result.issued:
            audit.record(
                session, actor=actor, action="coupon.grant", subject_type="coupon", subject_id=str(coupon.id),
                detail={"benefit": benefit_id, "campaign": CAMPAIGN, "customer_id": customer_id, "rule": RULE,
                        "status": coupon.status},
                source=source, at=now,
            )  # fmt: skip
    if coupon.status == "granted":
        try:
            with session.begin_nested():
                coupon = ledger.claim(session, coupon.id, now=now, actor=actor, source=source)
        except (AppError, SQLAlchemyError):  # claimed meanwhile, or its claim window closed
            coupon = _latest_coupon(session, customer_id, benefit_id) or coupon
            if coupon.status == "granted":
                return None, "claim_closed"
    return coupon, None
