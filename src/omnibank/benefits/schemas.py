"""Pydantic I/O of the benefits domain: the catalogue file (YAML) and what the services hand back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from omnibank.benefits.models import BENEFIT_TYPES
from omnibank.customers.values import CARD_TIERS as TIERS
from omnibank.customers.values import CardTier as Tier
from omnibank.kit.dates import BankDate, BankDateTime

BenefitType = Literal[
    "voucher", "membership", "e_card", "instant_discount", "points", "installment_discount", "physical_gift"
]
assert set(get_args(BenefitType)) == set(BENEFIT_TYPES)
assert set(get_args(Tier)) == set(TIERS)


def _exact(value: Any) -> Any:
    """Money and rates are read exactly: a YAML float (``26.5`` unquoted) is refused, not rounded."""
    if isinstance(value, bool):
        raise ValueError("expected a decimal written as a string, e.g. '26.00'")
    if isinstance(value, float):
        raise ValueError(f"write {value!r} as a quoted string (e.g. '26.00'), so that it is read exactly")
    return value


Id = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
SupplierId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
Money = Annotated[Decimal, BeforeValidator(_exact), Field(ge=0, max_digits=14, decimal_places=2)]
Rate = Annotated[Decimal, BeforeValidator(_exact), Field(gt=0, le=1, max_digits=5, decimal_places=4)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SupplierCreate(_Model):
    id: SupplierId
    name: str = Field(min_length=1, max_length=200)


class Validity(_Model):
    valid_days: int | None = Field(
        None, ge=1, description="Valid this many days after activation (inclusive)."
    )
    claim_days: int | None = Field(None, ge=0, description="Claim within this many days of the grant.")


class LotCreate(_Model):
    ref: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$", description="Delivery or order number.")
    quantity: int = Field(gt=0)
    unit_cost: Money
    received_at: BankDate | BankDateTime


class BenefitCreate(_Model):
    id: Id
    type: BenefitType
    name: str = Field(min_length=1, max_length=200)
    supplier: SupplierId | None = Field(None, description="None: issued by the bank itself.")
    face_value: Money = Field(description="CNY; the default when no tier override applies.")
    face_value_by_tier: dict[Tier, Money] = Field(default_factory=dict)
    cost: Money = Field(description="What one item costs the bank (CNY).")
    discount_rate: Rate | None = Field(None, description='e.g. "0.75" (7.5折) for installment discounts.')
    points: int | None = Field(None, gt=0, description="Points credited per item (type points).")
    stock: Literal["tracked", "unlimited"] = "tracked"
    usage_instructions: str = ""
    redemption_steps: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    validity: Validity = Field(default_factory=Validity)
    status: Literal["active", "inactive"] = "active"
    lots: list[LotCreate] = Field(default_factory=list)

    @model_validator(mode="after")
    def _coherent(self) -> BenefitCreate:
        if self.status == "active" and (not self.usage_instructions.strip() or not self.redemption_steps):
            raise ValueError(
                "an active benefit needs usage_instructions and redemption_steps (shown to the customer); "
                "write them, or set status: inactive"
            )
        if self.type == "points" and self.points is None:
            raise ValueError("a points benefit needs points (how many points one item credits)")
        if self.type != "points" and self.points is not None:
            raise ValueError("points applies to benefits of type points only")
        if self.lots and self.stock == "unlimited":
            raise ValueError("lots are for tracked stock (stock: unlimited takes none)")
        refs = [lot.ref for lot in self.lots]
        if len(refs) != len(set(refs)):
            raise ValueError("lot refs repeated")
        return self


class CatalogueFile(_Model):
    suppliers: list[SupplierCreate] = Field(default_factory=list)
    benefits: list[dict[str, Any]] = Field(min_length=1)  # each validated on its own, to name its id


@dataclass(frozen=True)
class BenefitRead:
    id: str
    type: str
    name: str
    supplier_id: str | None
    supplier_status: str | None
    face_value: Decimal
    face_value_by_tier: dict[str, Decimal]
    cost: Decimal
    discount_rate: Decimal | None
    points: int | None
    stock_tracked: bool
    available: int | None
    usage_instructions: str
    redemption_steps: list[str]
    valid_days: int | None
    claim_days: int | None
    status: str


@dataclass(frozen=True)
class CouponRead:
    id: int
    grant_key: str
    campaign: str
    rule: str
    customer_id: str
    benefit_id: str
    branch_id: str | None
    face_value_fen: int | None
    discount_rate: Decimal | None
    stage: int | None
    status: str
    granted_at: datetime
    claim_by: datetime | None
    valid_from: datetime
    valid_to: datetime | None
    status_at: datetime
