"""A catalogue file (YAML) read, checked and stored: ``omnibank benefits load FILE``.

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

Apart from the stored catalogue (``catalogue.py``) because only loading needs YAML and the file's own
checks; the lots a file lists are received through ``stock.py``, as any lot is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from omnibank.benefits import ledger
from omnibank.benefits.catalogue import field_path
from omnibank.benefits.models import Benefit, BenefitFaceValue, BenefitStock, InventoryLot, Supplier
from omnibank.benefits.schemas import BenefitCreate, CatalogueFile, SupplierCreate
from omnibank.benefits.stock import receive
from omnibank.errors import InputRefused
from omnibank.kit.money import from_fen, to_fen


@dataclass(frozen=True)
class Catalogue:
    source: str
    suppliers: list[SupplierCreate]
    benefits: list[BenefitCreate]


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
        found = [f"{path}: {field_path(e['loc']) or 'catalogue'}: {e['msg']}" for e in exc.errors()]
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
                place = field_path(e["loc"])
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
            if lot.ref not in received and receive(session, b.id, lot, tz):
                lots += 1
                units += lot.quantity
        session.flush()
    return CatalogueLoadResult(len(catalogue.suppliers), [b.id for b in catalogue.benefits], lots, units)
