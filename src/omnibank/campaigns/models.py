"""Live campaigns: the campaigns started, their persisted state, the log files applied, the grants made."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, Index, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from omnibank.db.base import Base
from omnibank.db.types import UTCDateTime


class Campaign(Base):
    """A started campaign: its definition (YAML as given) and the totals its budgets count against."""

    __tablename__ = "campaigns"
    __table_args__ = (CheckConstraint("status = 'active' OR status = 'stopped'", name="status"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    definition: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    totals: Mapped[str] = mapped_column(Text, default="{}")  # budgets' counters (JSON), saved with the state
    events: Mapped[int] = mapped_column(BigInteger, default=0)
    # shares of the customers (a stable hash of the id) that runs apply apart, each under a lease of its own
    # (:mod:`omnibank.campaigns.partitions`); 1 when a budget spans customers (one ordered pass)
    partitions: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CampaignCustomerState(Base):
    """One customer's state in one campaign (counters, caps, cards, points, icons), as JSON."""

    __tablename__ = "campaign_customer_states"

    campaign: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[str] = mapped_column(Text)


class CampaignOffset(Base):
    """A log file whose events of one partition of the customers a campaign has applied (files never change
    once published). The row is the fence of a partition's file: the first statement of its transaction."""

    __tablename__ = "campaign_offsets"

    campaign: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    part: Mapped[int] = mapped_column(Integer, primary_key=True, default=0, server_default="0")
    path: Mapped[str] = mapped_column(String(500), primary_key=True)
    events: Mapped[int] = mapped_column(BigInteger)
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CampaignPartition(Base):
    """A partition of a campaign's customers and the lease of the run applying it (none: free)."""

    __tablename__ = "campaign_partitions"

    campaign: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    part: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(120))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CampaignGrant(Base):
    """A granted item, by its deterministic key: applying the same events again grants nothing twice."""

    __tablename__ = "campaign_grants"
    __table_args__ = (
        Index("ix_campaign_grants_customer", "customer_id"),
        Index("ix_campaign_grants_campaign_rule", "campaign", "rule"),
    )

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    campaign: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    rule: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str] = mapped_column(String(32))
    benefit: Mapped[str] = mapped_column(String(64))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime())
    valid_to: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claim_by: Mapped[datetime | None] = mapped_column(UTCDateTime())
    face_value_fen: Mapped[int | None] = mapped_column(BigInteger)
    discount_rate: Mapped[Decimal | None] = mapped_column(Numeric(6, 4))
    stage: Mapped[int | None] = mapped_column(Integer)
    points: Mapped[int | None] = mapped_column(Integer)
    event_id: Mapped[str] = mapped_column(String(128))
    local_date: Mapped[date] = mapped_column(Date)
    # the coupon ledger's answer: "issued" (coupon_id), or "refused:<reason>", or "not_in_catalogue"
    ledger: Mapped[str] = mapped_column(
        String(80), default="not_in_catalogue", server_default="not_in_catalogue"
    )
    coupon_id: Mapped[int | None] = mapped_column(BigInteger)
