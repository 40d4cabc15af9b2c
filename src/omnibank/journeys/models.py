"""Journeys' tables: the journeys started, customers' entries with their state and next due time, every
step run (under a unique key: a step never runs twice), and the event-log files applied per journey."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from omnibank.db.base import Base
from omnibank.db.types import UTCDateTime

ENTRY_STATUSES = ("active", "control", "done", "exited", "converted")


class Journey(Base):
    """A started journey: its definition (YAML as given)."""

    __tablename__ = "journeys"
    __table_args__ = (CheckConstraint("status = 'active' OR status = 'stopped'", name="status"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    definition: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ticked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # a segment trigger's last look


class JourneyEntry(Base):
    """One customer's pass through a journey: the step machine's state and when it is due next."""

    __tablename__ = "journey_entries"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'control', 'done', 'exited', 'converted')", name="status"),
        Index("ux_journey_entries_customer", "journey", "customer_id", "entry_no", unique=True),
        Index("ix_journey_entries_due", "next_due_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    journey: Mapped[str] = mapped_column(ForeignKey("journeys.id", ondelete="CASCADE"))
    customer_id: Mapped[str] = mapped_column(String(32))
    entry_no: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    step: Mapped[str | None] = mapped_column(String(64))
    control: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(Text)  # EntryState as JSON
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # NULL: finished, or waits for events
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    converted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class JourneyStepRun(Base):
    """Something a journey did or saw, once per key: an entry, a send with the policy's decision, a lead,
    a tag, a grant, a conversion, a receipt, an exit. Attribution counts these."""

    __tablename__ = "journey_step_runs"
    __table_args__ = (
        Index("ix_journey_step_runs_journey_step", "journey", "step", "kind"),
        Index("ix_journey_step_runs_entry", "entry_id"),
    )

    key: Mapped[str] = mapped_column(String(240), primary_key=True)
    journey: Mapped[str] = mapped_column(ForeignKey("journeys.id", ondelete="CASCADE"))
    entry_id: Mapped[int | None] = mapped_column(BigInteger)
    customer_id: Mapped[str] = mapped_column(String(32))
    step: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(
        String(16)
    )  # enter, send, lead, tag, grant, split, convert, receipt, exit
    outcome: Mapped[str | None] = mapped_column(String(16))  # send/defer/suppress; delivered/failed/clicked …
    channel: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    variant: Mapped[str | None] = mapped_column(String(64))
    control: Mapped[bool] = mapped_column(Boolean, default=False)
    ref: Mapped[str | None] = mapped_column(String(64))  # the outbox message or the lead
    at: Mapped[datetime] = mapped_column(UTCDateTime())  # the step's logical time
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class JourneyOffset(Base):
    """An event-log file already applied to a journey (triggers, waits, conversions, receipts)."""

    __tablename__ = "journey_offsets"

    journey: Mapped[str] = mapped_column(ForeignKey("journeys.id", ondelete="CASCADE"), primary_key=True)
    path: Mapped[str] = mapped_column(String(500), primary_key=True)
    events: Mapped[int] = mapped_column(BigInteger)
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime())
