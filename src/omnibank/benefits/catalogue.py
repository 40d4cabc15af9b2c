"""The catalogue as stored: a benefit looked up, listed, activated or deactivated.

Apart from reading the catalogue's file (``loading.py``) because every other part of benefits looks a
benefit up here — receiving stock, granting, the API and the CLI — and none of them needs YAML.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from omnibank.audit import service as audit
from omnibank.benefits.models import Benefit, BenefitFaceValue, BenefitStock, Supplier
from omnibank.benefits.schemas import BenefitRead
from omnibank.errors import AppError, NotFound
from omnibank.kit.money import from_fen


def field_path(loc: tuple[Any, ...]) -> str:
    """A pydantic error's location as ``a.b.c`` (a catalogue's or a lot's field, in a message)."""
    return ".".join(str(p) for p in loc if p != "[key]")


def find_benefit(session: Session, benefit_id: str) -> Benefit:
    """The catalogue's benefit, or NotFound."""
    benefit = session.get(Benefit, benefit_id)
    if benefit is None:
        raise NotFound(f"no benefit {benefit_id!r} in the catalogue (omnibank benefits load FILE)")
    return benefit


def set_benefit_status(
    session: Session, benefit_id: str, status: Literal["active", "inactive"], *, actor: str, now: datetime
) -> None:
    """Activate or deactivate a benefit; activating one without usage instructions and redemption steps for
    the customer is refused. Audited."""
    benefit = find_benefit(session, benefit_id)
    if status == "active" and (not benefit.usage_instructions or not json.loads(benefit.redemption_steps)):
        raise AppError(
            f"benefit {benefit_id} cannot be activated: it has no usage instructions or redemption steps to "
            "show the customer (add them to the catalogue file and load it)"
        )
    if benefit.status != status:
        benefit.status = status
        benefit.updated_at = now
        session.flush()
        audit.record(
            session, actor=actor, action=f"benefit.{status}", subject_type="benefit", subject_id=benefit_id
        )


def list_benefits(session: Session) -> list[BenefitRead]:
    tiers: dict[str, dict[str, Decimal]] = {}
    for fv in session.scalars(select(BenefitFaceValue)):
        tiers.setdefault(fv.benefit_id, {})[fv.tier] = from_fen(fv.face_value_fen)
    stock = dict(session.execute(select(BenefitStock.benefit_id, BenefitStock.available)).all())
    statuses = dict(session.execute(select(Supplier.id, Supplier.status)).all())
    return [
        BenefitRead(
            id=b.id,
            type=b.type,
            name=b.name,
            supplier_id=b.supplier_id,
            supplier_status=statuses.get(b.supplier_id) if b.supplier_id else None,
            face_value=from_fen(b.face_value_fen),
            face_value_by_tier=tiers.get(b.id, {}),
            cost=from_fen(b.cost_fen),
            discount_rate=b.discount_rate,
            points=b.points,
            stock_tracked=b.stock_tracked,
            available=stock.get(b.id, 0) if b.stock_tracked else None,
            usage_instructions=b.usage_instructions,
            redemption_steps=json.loads(b.redemption_steps),
            valid_days=b.valid_days,
            claim_days=b.claim_days,
            status=b.status,
        )
        for b in session.scalars(select(Benefit).order_by(Benefit.id))
    ]


def get_benefit(session: Session, benefit_id: str) -> BenefitRead:
    find_benefit(session, benefit_id)
    return next(b for b in list_benefits(session) if b.id == benefit_id)
