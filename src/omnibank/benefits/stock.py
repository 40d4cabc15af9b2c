"""Stock of tracked benefits: lots received, the stock they make available, the days a grant found none.

Apart from the catalogue's file (``loading.py`` receives a file's lots through :func:`receive`) and from
granting (which takes stock through the ledger and counts a refusal here) because a lot arrives on its own
too (``omnibank benefits receive``, the demo's monthly reorder) and the stock report reads only these.
Stock itself is taken and given back by ``ledger.py`` (conditional updates, rule 5).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omnibank.benefits import ledger
from omnibank.benefits.catalogue import field_path, find_benefit
from omnibank.benefits.models import Benefit, BenefitStock, InventoryLot, StockOut
from omnibank.benefits.schemas import LotCreate
from omnibank.errors import AppError, Conflict
from omnibank.kit.money import to_fen


def _moment(value: date | datetime, tz: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz)
    return datetime.combine(value, time(0, 0), tz)


def receive(session: Session, benefit_id: str, lot: LotCreate, tz: ZoneInfo) -> bool:
    """Receive a checked lot: its row by ``ref`` (once) and its quantity added to the stock."""
    inserted = ledger.insert_ignore(
        session,
        InventoryLot,
        {
            "ref": lot.ref,
            "benefit_id": benefit_id,
            "quantity": lot.quantity,
            "unit_cost_fen": to_fen(lot.unit_cost),
            "received_at": _moment(lot.received_at, tz),
        },
    )
    if inserted:
        ledger.add_stock(session, benefit_id, lot.quantity)
    return inserted


def receive_lot(
    session: Session,
    *,
    benefit_id: str,
    ref: str,
    quantity: int,
    unit_cost: Decimal,
    received_at: datetime,
    tz: ZoneInfo,
) -> bool:
    """Receive a lot of a tracked benefit: its quantity becomes available. Idempotent by ``ref`` (False:
    received before, nothing changed); the same ref with other figures is refused."""
    benefit = find_benefit(session, benefit_id)
    if not benefit.stock_tracked:
        raise AppError(f"benefit {benefit_id} has unlimited stock: it takes no lots")
    try:
        lot = LotCreate(ref=ref, quantity=quantity, unit_cost=unit_cost, received_at=received_at)
    except ValidationError as exc:
        raise AppError(
            "lot refused: " + "; ".join(f"{field_path(e['loc'])}: {e['msg']}" for e in exc.errors())
        ) from None
    old = session.execute(select(InventoryLot).where(InventoryLot.ref == ref)).scalar_one_or_none()
    if old is not None:
        if (old.benefit_id, old.quantity, old.unit_cost_fen) != (benefit_id, quantity, to_fen(unit_cost)):
            raise Conflict(f"lot {ref} was received before as {old.quantity} of {old.benefit_id}")
        return False
    return receive(session, benefit_id, lot, tz)


@dataclass(frozen=True)
class StockLine:
    benefit_id: str
    name: str
    supplier_id: str | None
    received: int
    granted: int
    available: int
    lots: int
    average_unit_cost_fen: int | None
    stock_out_days: int


def stock_report(session: Session) -> list[StockLine]:
    lots = {
        bid: (int(n), int(q), int(cost))
        for bid, n, q, cost in session.execute(
            select(
                InventoryLot.benefit_id,
                func.count(),
                func.sum(InventoryLot.quantity),
                func.sum(InventoryLot.quantity * InventoryLot.unit_cost_fen),
            ).group_by(InventoryLot.benefit_id)
        )
    }
    outs = dict(
        session.execute(select(StockOut.benefit_id, func.count()).group_by(StockOut.benefit_id)).all()
    )
    rows = session.execute(
        select(Benefit, BenefitStock)
        .join(BenefitStock, BenefitStock.benefit_id == Benefit.id)
        .order_by(Benefit.id)
    )
    out = []
    for b, s in rows:
        n, q, cost = lots.get(b.id, (0, 0, 0))
        out.append(
            StockLine(
                benefit_id=b.id,
                name=b.name,
                supplier_id=b.supplier_id,
                received=s.received,
                granted=s.granted,
                available=s.available,
                lots=n,
                average_unit_cost_fen=(cost + q // 2) // q if q else None,
                stock_out_days=int(outs.get(b.id, 0)),
            )
        )
    return out


def count_stock_out(session: Session, benefit_id: str, at: datetime, tz: ZoneInfo) -> None:
    """Count a grant refused for want of stock (the day's refusals of the benefit), in its own right: a
    caller whose transaction rolls back with the refusal (the API answering 409) counts it apart."""
    count_stock_out_of(session, find_benefit(session, benefit_id), at, tz)


def count_stock_out_of(session: Session, benefit: Benefit, at: datetime, tz: ZoneInfo) -> None:
    """:func:`count_stock_out` for a benefit at hand (the grant paths have it)."""
    day = at.astimezone(tz).date()
    if not ledger.insert_ignore(
        session,
        StockOut,
        {
            "benefit_id": benefit.id,
            "day": day,
            "supplier_id": benefit.supplier_id,
            "refusals": 1,
            "first_at": at,
        },
    ):
        session.execute(
            StockOut.__table__.update()  # type: ignore[attr-defined]
            .where(StockOut.benefit_id == benefit.id, StockOut.day == day)
            .values(refusals=StockOut.refusals + 1)
        )
