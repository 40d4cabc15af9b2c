"""The event log's mirror in the operational store (for evaluating expressions in PostgreSQL).

The log itself is Parquet (see :mod:`omnibank.events.log`); ``omnibank events mirror`` copies what is not
mirrored yet into ``event_facts`` so that the same compiled expressions run in the store's SQL."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Boolean, Date, Float, Index, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from omnibank.db.base import Base
from omnibank.db.types import UTCDateTime


class EventFact(Base):
    __tablename__ = "event_facts"
    __table_args__ = (Index("ix_event_facts_type_date", "type", "local_date"),)

    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str] = mapped_column(String(32), index=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    local_date: Mapped[date] = mapped_column(Date)
    channel: Mapped[str | None] = mapped_column(String(16))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    card_id: Mapped[str | None] = mapped_column(String(64))
    product: Mapped[str | None] = mapped_column(String(64))
    tier: Mapped[str | None] = mapped_column(String(16))
    is_primary: Mapped[bool | None] = mapped_column(Boolean)
    new_customer: Mapped[bool | None] = mapped_column(Boolean)
    merchant: Mapped[str | None] = mapped_column(String(200))
    mcc: Mapped[str | None] = mapped_column(String(16))
    points: Mapped[int | None] = mapped_column(BigInteger)
    reward: Mapped[str | None] = mapped_column(String(64))
    quantity: Mapped[int | None] = mapped_column(BigInteger)
    product_id: Mapped[str | None] = mapped_column(String(64))
    duration_s: Mapped[float | None] = mapped_column(Float)


class EventMirrorFile(Base):
    """A log file already copied into ``event_facts``."""

    __tablename__ = "event_mirror_files"

    path: Mapped[str] = mapped_column(String(500), primary_key=True)
    rows: Mapped[int] = mapped_column(BigInteger)
    mirrored_at: Mapped[datetime] = mapped_column(UTCDateTime())


class EventConsumerFile(Base):
    """An event-log file a consumer (a job that acts on events as they arrive: survey triggers, CX alert
    rules) has read. Log files are immutable once published, so "read" is a set of paths."""

    __tablename__ = "event_consumer_files"

    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    path: Mapped[str] = mapped_column(String(500), primary_key=True)
    events: Mapped[int] = mapped_column(Integer)
    read_at: Mapped[datetime] = mapped_column(UTCDateTime())
