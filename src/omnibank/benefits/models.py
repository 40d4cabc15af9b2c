"""Benefits (权益): catalogue, suppliers and stock, the coupon ledger, budgets and caps, the points ledger.

Every counter (stock, budgets, caps, points balances) is a row decremented by a conditional UPDATE and
backed by a CHECK (… >= 0); ledgers (coupon events, points postings) are append-only."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from omnibank.customers.values import CARD_TIERS as TIERS  # re-exported: the catalogue's tiers
from omnibank.db.base import Base, one_of
from omnibank.db.types import UTCDateTime

BENEFIT_TYPES = (
    "voucher",
    "membership",
    "e_card",
    "instant_discount",
    "points",
    "installment_discount",
    "physical_gift",
)
BENEFIT_STATUSES = ("active", "inactive")
SUPPLIER_STATUSES = ("active", "warning", "rectification", "suspended")
COUPON_STATUSES = ("granted", "claimed", "active", "redeemed", "expired", "revoked")
BUDGET_SCOPES = ("campaign", "rule", "branch")
POINTS_KINDS = ("earn", "redeem", "expire", "reverse")
SYNC_OUTCOMES = ("match", "differs", "missing_from_file")

_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only


class Supplier(Base):
    """A supplier of benefits (瑞幸咖啡, a 权益供应商…). A suspended supplier's benefits cannot be granted."""

    __tablename__ = "suppliers"
    __table_args__ = (CheckConstraint(one_of("status", SUPPLIER_STATUSES), name="status"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="active")
    status_reason: Mapped[str] = mapped_column(String(500), default="")
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Benefit(Base):
    """A catalogue entry. Active only with usage instructions and redemption steps for the customer."""

    __tablename__ = "benefits"
    __table_args__ = (
        CheckConstraint(one_of("type", BENEFIT_TYPES), name="type"),
        CheckConstraint(one_of("status", BENEFIT_STATUSES), name="status"),
        CheckConstraint("face_value_fen >= 0", name="face_value"),
        CheckConstraint("cost_fen >= 0", name="cost"),
        CheckConstraint("discount_rate IS NULL OR (discount_rate > 0 AND discount_rate <= 1)", name="rate"),
        CheckConstraint("valid_days IS NULL OR valid_days >= 1", name="valid_days"),
        CheckConstraint("claim_days IS NULL OR claim_days >= 0", name="claim_days"),
        CheckConstraint("points IS NULL OR points > 0", name="points"),
        CheckConstraint(
            "status = 'inactive' OR (usage_instructions <> '' AND redemption_steps <> '[]')",
            name="active_needs_instructions",
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    supplier_id: Mapped[str | None] = mapped_column(ForeignKey("suppliers.id"), index=True)
    face_value_fen: Mapped[int] = mapped_column(BigInteger)
    cost_fen: Mapped[int] = mapped_column(BigInteger)
    discount_rate: Mapped[Decimal | None] = mapped_column(Numeric(6, 4))
    points: Mapped[int | None] = mapped_column(BigInteger)  # points credited per item (type points)
    stock_tracked: Mapped[bool] = mapped_column(default=True)
    usage_instructions: Mapped[str] = mapped_column(Text, default="")
    redemption_steps: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of steps
    valid_days: Mapped[int | None] = mapped_column(Integer)
    claim_days: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class BenefitFaceValue(Base):
    """A face value that differs by card tier (瑞幸饮品券: 26.00 gold, 29.00 platinum)."""

    __tablename__ = "benefit_face_values"
    __table_args__ = (
        CheckConstraint(one_of("tier", TIERS), name="tier"),
        CheckConstraint("face_value_fen >= 0", name="face_value"),
    )

    benefit_id: Mapped[str] = mapped_column(ForeignKey("benefits.id", ondelete="CASCADE"), primary_key=True)
    tier: Mapped[str] = mapped_column(String(16), primary_key=True)
    face_value_fen: Mapped[int] = mapped_column(BigInteger)


class BenefitStock(Base):
    """Available stock of a tracked benefit: received lots add to it, each grant takes one."""

    __tablename__ = "benefit_stock"
    __table_args__ = (
        CheckConstraint("available >= 0", name="available"),
        CheckConstraint("received >= 0", name="received"),
        CheckConstraint("granted >= 0", name="granted"),
    )

    benefit_id: Mapped[str] = mapped_column(ForeignKey("benefits.id", ondelete="CASCADE"), primary_key=True)
    available: Mapped[int] = mapped_column(BigInteger, default=0)
    received: Mapped[int] = mapped_column(BigInteger, default=0)
    granted: Mapped[int] = mapped_column(BigInteger, default=0)


class InventoryLot(Base):
    """A lot received from the supplier; ``ref`` (the delivery or order number) makes receiving idempotent."""

    __tablename__ = "inventory_lots"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity"),
        CheckConstraint("unit_cost_fen >= 0", name="unit_cost"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    ref: Mapped[str] = mapped_column(String(64), unique=True)
    benefit_id: Mapped[str] = mapped_column(ForeignKey("benefits.id"), index=True)
    quantity: Mapped[int] = mapped_column(BigInteger)
    unit_cost_fen: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StockOut(Base):
    """A bank-local day on which a benefit refused grants for want of stock (counted for the scorecard)."""

    __tablename__ = "stock_outs"
    __table_args__ = (CheckConstraint("refusals >= 1", name="refusals"),)

    benefit_id: Mapped[str] = mapped_column(ForeignKey("benefits.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    supplier_id: Mapped[str | None] = mapped_column(String(32), index=True)
    refusals: Mapped[int] = mapped_column(BigInteger, default=1)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SupplierSync(Base):
    """One stock sync against a supplier's file."""

    __tablename__ = "supplier_syncs"

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    source: Mapped[str] = mapped_column(String(1000))
    report_dir: Mapped[str] = mapped_column(String(1000))


class SupplierSyncLine(Base):
    """One benefit's count in a sync: ours, the supplier's, and whether they agree."""

    __tablename__ = "supplier_sync_lines"
    __table_args__ = (CheckConstraint(one_of("outcome", SYNC_OUTCOMES), name="outcome"),)

    sync_id: Mapped[int] = mapped_column(
        ForeignKey("supplier_syncs.id", ondelete="CASCADE"), primary_key=True
    )
    benefit_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    supplier_id: Mapped[str] = mapped_column(String(32), index=True)
    ours: Mapped[int] = mapped_column(BigInteger)
    theirs: Mapped[int | None] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(24))


class SupplierFulfilment(Base):
    """A supplier's result of issuing a granted coupon (the voucher code sent, the e-card delivered…)."""

    __tablename__ = "supplier_fulfilments"

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    supplier_id: Mapped[str] = mapped_column(String(32), index=True)
    coupon_id: Mapped[int] = mapped_column(ForeignKey("coupons.id"), index=True)
    ok: Mapped[bool] = mapped_column()
    reason: Mapped[str] = mapped_column(String(500), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class Coupon(Base):
    """One granted item, unique by its deterministic grant key. Status moves only by conditional UPDATE.

    No index holds ``status`` (or ``status_at``), and on PostgreSQL pages are filled to 80%: a claim or a
    redemption changes only those columns, so PostgreSQL can write the new row version beside the old one
    without touching any index (a HOT update; with ``status`` indexed, every move wrote an entry into each of
    the table's six indexes). The periodic sweep, the one reader by status alone, scans the table."""

    __tablename__ = "coupons"
    __table_args__ = (
        CheckConstraint(one_of("status", COUPON_STATUSES), name="status"),
        CheckConstraint("face_value_fen IS NULL OR face_value_fen >= 0", name="face_value"),
        Index("ix_coupons_customer", "customer_id", "granted_at"),
        Index("ix_coupons_campaign_rule", "campaign", "rule"),
        {"postgresql_with": {"fillfactor": 80}},
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    grant_key: Mapped[str] = mapped_column(String(300), unique=True)
    campaign: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str] = mapped_column(String(32))
    benefit_id: Mapped[str] = mapped_column(ForeignKey("benefits.id"), index=True)
    branch_id: Mapped[str | None] = mapped_column(String(32))
    face_value_fen: Mapped[int | None] = mapped_column(BigInteger)
    discount_rate: Mapped[Decimal | None] = mapped_column(Numeric(6, 4))
    stage: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claim_by: Mapped[datetime | None] = mapped_column(UTCDateTime())
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime())
    valid_to: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CouponEvent(Base):
    """Append-only history of a coupon: one row per status it reached (each is reached at most once)."""

    __tablename__ = "coupon_events"
    __table_args__ = (
        UniqueConstraint("coupon_id", "to_status", name="uq_coupon_events_coupon_status"),
        CheckConstraint(one_of("to_status", COUPON_STATUSES), name="to_status"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    coupon_id: Mapped[int] = mapped_column(ForeignKey("coupons.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(128))
    detail: Mapped[str] = mapped_column(Text, default="{}")


class Budget(Base):
    """A budget of a campaign, a campaign's rule or a campaign's branch: items and/or face value (fen) left.

    ``count_left``/``money_left_fen`` are the counters taken by conditional UPDATE (CHECK >= 0); what was used
    is counted beside them in the same statement, so that a limit can be changed later."""

    __tablename__ = "budgets"
    __table_args__ = (
        CheckConstraint(one_of("scope", BUDGET_SCOPES), name="scope"),
        CheckConstraint("count_limit IS NOT NULL OR money_limit_fen IS NOT NULL", name="some_limit"),
        CheckConstraint("count_left IS NULL OR count_left >= 0", name="count_left"),
        CheckConstraint("money_left_fen IS NULL OR money_left_fen >= 0", name="money_left"),
        CheckConstraint("count_used >= 0 AND money_used_fen >= 0", name="used"),
        CheckConstraint(
            "(count_limit IS NULL AND count_left IS NULL) OR count_left = count_limit - count_used",
            name="count_pair",
        ),
        CheckConstraint(
            "(money_limit_fen IS NULL AND money_left_fen IS NULL)"
            " OR money_left_fen = money_limit_fen - money_used_fen",
            name="money_pair",
        ),
        CheckConstraint(
            "(scope = 'campaign' AND rule IS NULL AND branch_id IS NULL)"
            " OR (scope = 'rule' AND rule IS NOT NULL AND branch_id IS NULL)"
            " OR (scope = 'branch' AND rule IS NULL AND branch_id IS NOT NULL)",
            name="scope_fields",
        ),
    )

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))
    campaign: Mapped[str] = mapped_column(String(64), index=True)
    rule: Mapped[str | None] = mapped_column(String(64))
    branch_id: Mapped[str | None] = mapped_column(String(32))
    count_limit: Mapped[int | None] = mapped_column(BigInteger)
    count_left: Mapped[int | None] = mapped_column(BigInteger)
    money_limit_fen: Mapped[int | None] = mapped_column(BigInteger)
    money_left_fen: Mapped[int | None] = mapped_column(BigInteger)
    count_used: Mapped[int] = mapped_column(BigInteger, default=0)  # counted with or without a count limit
    money_used_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CapCounter(Base):
    """A per-customer-per-period cap (scope e.g. ``luckin2026:weekly:year``, period ``2026``)."""

    __tablename__ = "cap_counters"
    __table_args__ = (
        CheckConstraint("cap_limit >= 0", name="cap_limit"),
        CheckConstraint("cap_left >= 0", name="cap_left"),
    )

    scope: Mapped[str] = mapped_column(String(200), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    period: Mapped[str] = mapped_column(String(32), primary_key=True)
    cap_limit: Mapped[int] = mapped_column(BigInteger)
    cap_left: Mapped[int] = mapped_column(BigInteger)


class PointsPosting(Base):
    """Append-only: a positive amount with an explicit direction. Corrected by a reversal, never edited."""

    __tablename__ = "points_postings"
    __table_args__ = (
        CheckConstraint(one_of("kind", POINTS_KINDS), name="kind"),
        CheckConstraint("direction = 'credit' OR direction = 'debit'", name="direction"),
        CheckConstraint("amount > 0", name="amount"),
        CheckConstraint(
            "(kind = 'earn' AND direction = 'credit' AND reverses_id IS NULL)"
            " OR ((kind = 'redeem' OR kind = 'expire') AND direction = 'debit' AND reverses_id IS NULL)"
            " OR (kind = 'reverse' AND reverses_id IS NOT NULL)",
            name="kind_direction",
        ),
        Index("ix_points_postings_customer", "customer_id", "id"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(8))
    direction: Mapped[str] = mapped_column(String(8))
    amount: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str] = mapped_column(String(300), default="")
    idempotency_key: Mapped[str] = mapped_column(String(300), unique=True)
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("points_postings.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PointsBalance(Base):
    """A customer's balance, changed in the same transaction as each posting; ``points verify`` checks it."""

    __tablename__ = "points_balances"
    __table_args__ = (CheckConstraint("balance >= 0", name="balance"),)

    customer_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
