"""Benefits (权益): the catalogue (YAML), stock lots, and ``grant`` — issuing one item into the coupon ledger.

A catalogue file names suppliers and benefits::

    suppliers:
      - {id: luckin, name: 瑞幸咖啡}
    benefits:
      - id: luckin_voucher
        type: voucher
        name: 瑞幸咖啡饮品券
        supplier: luckin
        face_value: "26.00"
        face_value_by_tier: {platinum: "29.00"}
        cost: "17.50"
        usage_instructions: …
        redemption_steps: [打开瑞幸咖啡App, …]
        validity: {valid_days: 30, claim_days: 30}
        lots: [{ref: LK-2026-001, quantity: 5000, unit_cost: "17.50", received_at: 2026-01-02}]

``omnibank benefits load FILE`` checks everything first (every problem named with the file and the
benefit's id) and stores nothing if anything is wrong. Loading the same file again changes nothing: lots
are received once by their ``ref``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo

import yaml
from pydantic import ValidationError
from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from omnibank.audit import service as audit
from omnibank.benefits import ledger
from omnibank.benefits.ledger import BudgetKey, CapKey, coupon_read
from omnibank.benefits.models import (
    Benefit,
    BenefitFaceValue,
    BenefitStock,
    Coupon,
    CouponEvent,
    InventoryLot,
    StockOut,
    Supplier,
)
from omnibank.benefits.schemas import (
    BenefitCreate,
    BenefitRead,
    CatalogueFile,
    CouponRead,
    LotCreate,
    SupplierCreate,
)
from omnibank.config import get_settings
from omnibank.errors import AppError, Conflict, InputRefused, NotFound
from omnibank.kit.money import from_fen, to_fen

# ------------------------------------------------------------------------------------------------ catalogue


@dataclass(frozen=True)
class Catalogue:
    source: str
    suppliers: list[SupplierCreate]
    benefits: list[BenefitCreate]


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if p != "[key]")


def read_catalogue(path: Path) -> Catalogue:
    """Read and validate a catalogue file; every problem is reported at once, naming the file and the
    benefit (or supplier)."""
    if not path.is_file():
        raise InputRefused(f"{path}: no such file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputRefused(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    try:
        doc = CatalogueFile.model_validate(raw)
    except ValidationError as exc:
        found = [f"{path}: {_loc(e['loc']) or 'catalogue'}: {e['msg']}" for e in exc.errors()]
        if not isinstance(raw, dict):
            found = [f"{path}: expected a mapping with suppliers and benefits"]
        raise InputRefused("catalogue refused:\n  " + "\n  ".join(found)) from None
    problems: list[str] = []
    benefits: list[BenefitCreate] = []
    benefit_ids: list[str] = []
    for i, item in enumerate(doc.benefits, 1):
        ident = item.get("id") if isinstance(item.get("id"), str) else None
        if ident:
            benefit_ids.append(ident)
        where = f"{path}: benefit {ident!r}" if ident else f"{path}: benefit #{i}"
        try:
            benefits.append(BenefitCreate.model_validate(item))
        except ValidationError as exc:
            for e in exc.errors():
                place = _loc(e["loc"])
                problems.append(
                    f"{where}: {place + ': ' if place else ''}{e['msg'].removeprefix('Value error, ')}"
                )
    supplier_ids = [s.id for s in doc.suppliers]
    for sid in sorted({s for s in supplier_ids if supplier_ids.count(s) > 1}):
        problems.append(f"{path}: supplier {sid!r} is defined twice")
    for bid in sorted({b for b in benefit_ids if benefit_ids.count(b) > 1}):
        problems.append(f"{path}: benefit {bid!r} is defined twice")
    refs = [(lot.ref, b.id) for b in benefits for lot in b.lots]
    for ref in sorted({r for r, _ in refs if [x for x, _ in refs].count(r) > 1}):
        owners = sorted({b for r, b in refs if r == ref})
        if len(owners) > 1:
            problems.append(f"{path}: lot ref {ref!r} is used by benefits {', '.join(owners)}")
    if problems:
        raise InputRefused("catalogue refused:\n  " + "\n  ".join(problems))
    return Catalogue(str(path), list(doc.suppliers), benefits)


@dataclass(frozen=True)
class CatalogueLoadResult:
    suppliers: int
    benefits: list[str]
    lots_received: int
    units_received: int


def _moment(value: date | datetime, tz: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz)
    return datetime.combine(value, time(0, 0), tz)


def store_catalogue(
    session: Session, catalogue: Catalogue, *, tz: ZoneInfo, now: datetime
) -> CatalogueLoadResult:
    """Check the catalogue against the store (suppliers named, lots received before), then upsert it.
    Nothing is written when anything is wrong. A supplier's status is kept (only its name changes)."""
    src = catalogue.source
    problems: list[str] = []
    known_suppliers = {s.id: s for s in session.scalars(select(Supplier))}
    in_file = {s.id for s in catalogue.suppliers}
    for b in catalogue.benefits:
        if b.supplier and b.supplier not in in_file and b.supplier not in known_suppliers:
            problems.append(f"{src}: benefit {b.id!r}: supplier: unknown supplier {b.supplier!r}")
    refs = [lot.ref for b in catalogue.benefits for lot in b.lots]
    received = {
        lot.ref: lot for lot in session.scalars(select(InventoryLot).where(InventoryLot.ref.in_(refs)))
    }
    for b in catalogue.benefits:
        for lot in b.lots:
            old = received.get(lot.ref)
            if old is None:
                continue
            if (old.benefit_id, old.quantity, old.unit_cost_fen) != (
                b.id,
                lot.quantity,
                to_fen(lot.unit_cost),
            ):
                problems.append(
                    f"{src}: benefit {b.id!r}: lot {lot.ref!r} was received before as {old.quantity} of "
                    f"{old.benefit_id} at {from_fen(old.unit_cost_fen)}; a received lot cannot change"
                )
    if problems:
        raise InputRefused("catalogue refused:\n  " + "\n  ".join(problems))

    for s in catalogue.suppliers:
        existing = known_suppliers.get(s.id)
        if existing is None:
            session.add(
                Supplier(
                    id=s.id,
                    name=s.name,
                    status="active",
                    status_reason="",
                    status_changed_at=now,
                    updated_at=now,
                )
            )
        elif existing.name != s.name:
            existing.name = s.name
            existing.updated_at = now
    session.flush()
    lots = units = 0
    for b in catalogue.benefits:
        values = {
            "type": b.type,
            "name": b.name,
            "supplier_id": b.supplier,
            "face_value_fen": to_fen(b.face_value),
            "cost_fen": to_fen(b.cost),
            "discount_rate": b.discount_rate,
            "points": b.points,
            "stock_tracked": b.stock == "tracked",
            "usage_instructions": b.usage_instructions.strip(),
            "redemption_steps": json.dumps(b.redemption_steps, ensure_ascii=False),
            "valid_days": b.validity.valid_days,
            "claim_days": b.validity.claim_days,
            "status": b.status,
        }
        row = session.get(Benefit, b.id)
        if row is None:
            session.add(Benefit(id=b.id, updated_at=now, **values))
        else:
            changed = False
            for k, v in values.items():
                if getattr(row, k) != v:
                    setattr(row, k, v)
                    changed = True
            if changed:
                row.updated_at = now
        session.flush()
        session.execute(delete(BenefitFaceValue).where(BenefitFaceValue.benefit_id == b.id))
        for tier, value in sorted(b.face_value_by_tier.items()):
            session.add(BenefitFaceValue(benefit_id=b.id, tier=tier, face_value_fen=to_fen(value)))
        if b.stock == "tracked":
            ledger.insert_ignore(
                session, BenefitStock, {"benefit_id": b.id, "available": 0, "received": 0, "granted": 0}
            )
        for lot in b.lots:
            if lot.ref not in received and _receive(session, b.id, lot, tz):
                lots += 1
                units += lot.quantity
        session.flush()
    return CatalogueLoadResult(len(catalogue.suppliers), [b.id for b in catalogue.benefits], lots, units)


def _receive(session: Session, benefit_id: str, lot: LotCreate, tz: ZoneInfo) -> bool:
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
    benefit = _benefit(session, benefit_id)
    if not benefit.stock_tracked:
        raise AppError(f"benefit {benefit_id} has unlimited stock: it takes no lots")
    try:
        lot = LotCreate(ref=ref, quantity=quantity, unit_cost=unit_cost, received_at=received_at)
    except ValidationError as exc:
        raise AppError(
            "lot refused: " + "; ".join(f"{_loc(e['loc'])}: {e['msg']}" for e in exc.errors())
        ) from None
    old = session.execute(select(InventoryLot).where(InventoryLot.ref == ref)).scalar_one_or_none()
    if old is not None:
        if (old.benefit_id, old.quantity, old.unit_cost_fen) != (benefit_id, quantity, to_fen(unit_cost)):
            raise Conflict(f"lot {ref} was received before as {old.quantity} of {old.benefit_id}")
        return False
    return _receive(session, benefit_id, lot, tz)


def _benefit(session: Session, benefit_id: str) -> Benefit:
    benefit = session.get(Benefit, benefit_id)
    if benefit is None:
        raise NotFound(f"no benefit {benefit_id!r} in the catalogue (omnibank benefits load FILE)")
    return benefit


def set_benefit_status(
    session: Session, benefit_id: str, status: Literal["active", "inactive"], *, actor: str, now: datetime
) -> None:
    """Activate or deactivate a benefit; activating one without usage instructions and redemption steps for
    the customer is refused. Audited."""
    benefit = _benefit(session, benefit_id)
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
    _benefit(session, benefit_id)
    return next(b for b in list_benefits(session) if b.id == benefit_id)


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


# ------------------------------------------------------------------------------------------------- grant


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


class _Refused(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _end_of_day(d: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(d, time(23, 59, 59), tz)


def _aware(name: str, value: datetime | None) -> datetime | None:
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
        _aware(name, value)
    existing = session.execute(select(_COUPONS).where(_COUPONS.c.grant_key == key)).first()
    if existing is not None:
        return _duplicate(existing, customer_id, benefit_id)
    benefit = _benefit(session, benefit_id)
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
                raise _Refused("out_of_stock")
            for budget_id in sorted({b.id for b in budgets}):
                taken = ledger.take_budget(session, budget_id, face_value_fen=face_value_fen)
                if taken is False:
                    raise _Refused(f"budget_exhausted:{budget_id}")
                if taken:
                    charged.append(budget_id)
            for cap in sorted(set(caps)):
                if not ledger.take_cap(
                    session, scope=cap.scope, customer_id=customer_id, period=cap.period, limit=cap.limit
                ):
                    raise _Refused(f"cap:{cap.scope}:{cap.period}")
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
    except _Refused as refusal:
        if refusal.reason == "out_of_stock":
            _count_stock_out(session, benefit, at, zone)
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


@dataclass(frozen=True)
class GrantRequest:
    """One item to issue with :func:`grant_many` (the arguments of :func:`grant`)."""

    key: str
    campaign: str
    rule: str
    customer_id: str
    benefit_id: str
    granted_at: datetime
    face_value_fen: int | None = None
    discount_rate: Decimal | None = None
    stage: int | None = None
    branch_id: str | None = None
    claim_by: datetime | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    budgets: tuple[BudgetKey, ...] = ()


def grant_many(
    session: Session, requests: Sequence[GrantRequest], *, tz: ZoneInfo | None = None, actor: str
) -> list[GrantResult]:
    """Issue many items, with the same outcome, item by item and in order, as :func:`grant` each.

    When every item can be issued (none granted before, benefits active and not points, stock and every
    budget enough for all of them), it is done in a few statements: stock and budgets taken in one
    conditional UPDATE each for the whole batch, coupons and their history inserted together, all inside
    one SAVEPOINT. Otherwise (or if anything refuses half-way) that savepoint is rolled back and each item
    goes through :func:`grant` in order, so refusals fall on exactly the items they would one at a time."""
    zone = tz or get_settings().tz
    issued = _grant_all(session, requests, zone, actor) if requests else []
    if issued is not None:
        return issued
    # a GrantRequest's fields are grant()'s arguments, by name
    return [
        grant(session, **{f.name: getattr(r, f.name) for f in fields(r)}, tz=zone, actor=actor)
        for r in requests
    ]


def _grant_all(
    session: Session, requests: Sequence[GrantRequest], zone: ZoneInfo, actor: str
) -> list[GrantResult] | None:
    """Every item of ``requests`` issued at once, or None (nothing written) when that cannot be."""
    keys = [r.key for r in requests]
    if len(set(keys)) != len(keys):
        return None
    for r in requests:
        for name in ("granted_at", "claim_by", "valid_from", "valid_to"):
            _aware(name, getattr(r, name))
    for i in range(0, len(keys), 500):
        if session.execute(select(Coupon.id).where(Coupon.grant_key.in_(keys[i : i + 500])).limit(1)).first():
            return None
    wanted = {r.benefit_id for r in requests}
    benefits = {b.id: b for b in session.scalars(select(Benefit).where(Benefit.id.in_(wanted)))}
    if set(benefits) != wanted or any(b.status != "active" or b.type == "points" for b in benefits.values()):
        return None
    supplier_ids = {b.supplier_id for b in benefits.values() if b.supplier_id}
    statuses = session.execute(select(Supplier.status).where(Supplier.id.in_(supplier_ids))).scalars()
    if any(status == "suspended" for status in statuses):
        return None
    rows: list[dict[str, Any]] = []
    stock: dict[str, int] = {}
    budgets: dict[str, list[int]] = {}  # budget id → [items, face value]
    for r in requests:
        benefit = benefits[r.benefit_id]
        face = r.face_value_fen if r.face_value_fen is not None else benefit.face_value_fen
        if face < 0:
            return None
        start = r.valid_from or r.granted_at
        claim_by, valid_to = default_windows(
            benefit.claim_days, benefit.valid_days, r.granted_at, start, r.claim_by, r.valid_to, zone
        )
        rows.append(
            {
                "grant_key": r.key,
                "campaign": r.campaign,
                "rule": r.rule,
                "customer_id": r.customer_id,
                "benefit_id": r.benefit_id,
                "branch_id": r.branch_id,
                "face_value_fen": face,
                "discount_rate": r.discount_rate if r.discount_rate is not None else benefit.discount_rate,
                "stage": r.stage,
                "status": "granted",
                "granted_at": r.granted_at,
                "claim_by": claim_by,
                "valid_from": start,
                "valid_to": valid_to,
                "status_at": r.granted_at,
            }
        )
        if benefit.stock_tracked:
            stock[r.benefit_id] = stock.get(r.benefit_id, 0) + 1
        for budget_id in {b.id for b in r.budgets}:
            used = budgets.setdefault(budget_id, [0, 0])
            used[0] += 1
            used[1] += face
    defined: set[str] = set()
    try:
        with session.begin_nested():
            for benefit_id, n in sorted(stock.items()):
                if not ledger.take_stock(session, benefit_id, n):
                    raise _Refused("out_of_stock")
            for budget_id, (n, money) in sorted(budgets.items()):
                taken = ledger.take_budget(session, budget_id, face_value_fen=money, n=n)
                if taken is False:
                    raise _Refused(f"budget_exhausted:{budget_id}")
                if taken:
                    defined.add(budget_id)
            ids = list(
                session.scalars(insert(Coupon).returning(Coupon.id, sort_by_parameter_order=True), rows)
            )
            session.execute(
                insert(CouponEvent),
                [
                    {
                        "coupon_id": coupon_id,
                        "action": "grant",
                        "from_status": None,
                        "to_status": "granted",
                        "at": row["granted_at"],
                        "actor": actor,
                        "detail": json.dumps({"key": row["grant_key"]}, ensure_ascii=False),
                    }
                    for coupon_id, row in zip(ids, rows, strict=True)
                ],
            )
    except (_Refused, IntegrityError):
        return None
    return [
        GrantResult(
            "granted",
            CouponRead(id=coupon_id, **row),
            budgets=tuple(sorted({b.id for b in r.budgets} & defined)),
        )
        for coupon_id, row, r in zip(ids, rows, requests, strict=True)
    ]


def count_stock_out(session: Session, benefit_id: str, at: datetime, tz: ZoneInfo) -> None:
    """Count a grant refused for want of stock (the day's refusals of the benefit), in its own right: a
    caller whose transaction rolls back with the refusal (the API answering 409) counts it apart."""
    _count_stock_out(session, _benefit(session, benefit_id), at, tz)


def _count_stock_out(session: Session, benefit: Benefit, at: datetime, tz: ZoneInfo) -> None:
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
