"""Shared setup for the benefits tests: a small catalogue, the example one, and a grant helper."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from omnibank.benefits import granting, loading
from omnibank.benefits.granting import GrantResult
from omnibank.db import unit_of_work
from tests.conftest import write

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=TZ)  # a Monday, bank-local
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "benefits" / "catalogue.yaml"

STEPS = "[领取, 使用]"


def small_catalogue(tmp_path: Path, *, stock: int = 3, name: str = "catalogue.yaml") -> Path:
    """Supplier acme's voucher (``stock`` items received) and gift (100); the bank's discount; points."""
    return write(
        tmp_path / name,
        f"""
suppliers:
  - {{id: acme, name: 权益供应商}}
benefits:
  - id: voucher
    type: voucher
    name: 饮品券
    supplier: acme
    face_value: "26.00"
    face_value_by_tier: {{platinum: "29.00"}}
    cost: "15.00"
    usage_instructions: 每单限用1张
    redemption_steps: {STEPS}
    validity: {{valid_days: 30, claim_days: 30}}
    lots: [{{ref: LOT-1, quantity: {stock}, unit_cost: "15.00", received_at: 2026-01-01}}]
  - id: gift
    type: physical_gift
    name: 盲盒
    supplier: acme
    face_value: "39.00"
    cost: "22.00"
    usage_instructions: 包邮
    redemption_steps: {STEPS}
    lots: [{{ref: LOT-2, quantity: 100, unit_cost: "22.00", received_at: 2026-01-01}}]
  - id: discount
    type: installment_discount
    name: 分期折扣券
    face_value: "0"
    cost: "0"
    discount_rate: "0.75"
    stock: unlimited
    usage_instructions: 分期时使用
    redemption_steps: {STEPS}
    validity: {{valid_days: 90}}
  - id: bonus
    type: points
    name: 积分1000
    face_value: "0"
    cost: "2.00"
    points: 1000
    stock: unlimited
    usage_instructions: 自动入账
    redemption_steps: {STEPS}
""",
    )


def load(path: Path) -> None:
    catalogue = loading.read_catalogue(path)
    with unit_of_work() as session:
        loading.store_catalogue(session, catalogue, tz=TZ, now=NOW)


def give(
    session: Session,
    key: str,
    *,
    customer: str = "C000001",
    benefit: str = "voucher",
    at: datetime = NOW,
    **kw: Any,
) -> GrantResult:
    kw.setdefault("campaign", "camp")
    kw.setdefault("rule", "weekly")
    return granting.grant(
        session, key=key, customer_id=customer, benefit_id=benefit, granted_at=at, tz=TZ, **kw
    )


def grant_one(key: str, **kw: Any) -> GrantResult:
    """Grant in its own unit of work (committed at the edge, as the engine or CLI would)."""
    with unit_of_work() as session:
        return give(session, key, **kw)
