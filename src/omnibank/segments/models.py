from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from omnibank.db.base import Base
from omnibank.db.types import UTCDateTime


class Segment(Base):
    """A saved segment (客群): a name for an expression."""

    __tablename__ = "segments"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    expression: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SegmentSnapshot(Base):
    """One evaluation of a saved segment, kept with who entered and who left since the one before."""

    __tablename__ = "segment_snapshots"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    segment: Mapped[str] = mapped_column(ForeignKey("segments.name", ondelete="CASCADE"), index=True)
    expression: Mapped[str] = mapped_column(Text)
    as_of: Mapped[date] = mapped_column(Date)
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime())
    taken_by: Mapped[str] = mapped_column(String(128))
    members: Mapped[int] = mapped_column(Integer)
    entered: Mapped[int] = mapped_column(Integer)
    left: Mapped[int] = mapped_column(Integer)


class SegmentMember(Base):
    """Who is in a saved segment as of its latest snapshot."""

    __tablename__ = "segment_members"

    segment: Mapped[str] = mapped_column(ForeignKey("segments.name", ondelete="CASCADE"), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)
    snapshot_id: Mapped[int] = mapped_column(BigInteger)  # the snapshot in which the customer entered


class SegmentChange(Base):
    """A customer entered or left a segment at a snapshot (journeys trigger on entry)."""

    __tablename__ = "segment_changes"
    __table_args__ = (
        CheckConstraint("change = 'entered' OR change = 'left'", name="change"),
        Index("ix_segment_changes_customer", "customer_id"),
    )

    snapshot_id: Mapped[int] = mapped_column(
        ForeignKey("segment_snapshots.id", ondelete="CASCADE"), primary_key=True
    )
    customer_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    change: Mapped[str] = mapped_column(String(8))
