"""Call lists' tables: each list made (model, version, as-of day, size, holdout, counts) and its members —
customer id, rank, score and group only (``treated``, ``holdout`` or ``spared`` with the policy's reason).
Nothing personal: a member is a customer number."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from omnibank.db.base import Base
from omnibank.db.types import UTCDateTime

GROUPS = ("treated", "holdout", "spared")


class CallList(Base):
    """A call list: the model ranking it, the policy's counts, and the journey its members entered (if
    any). ``spared`` is JSON: reason → count."""

    __tablename__ = "call_lists"
    __table_args__ = (
        CheckConstraint("top > 0", name="top_positive"),
        CheckConstraint("holdout_percent >= 0 AND holdout_percent <= 90", name="holdout_percent"),
    )

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    model: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(32))
    as_of: Mapped[date] = mapped_column(Date)
    top: Mapped[int] = mapped_column(Integer)
    holdout_percent: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(16))
    journey: Mapped[str | None] = mapped_column(String(64))
    segment: Mapped[str | None] = mapped_column(Text)
    listed: Mapped[int] = mapped_column(Integer)
    held_out: Mapped[int] = mapped_column(Integer)
    deferred: Mapped[int] = mapped_column(Integer)
    spared: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CallListMember(Base):
    """One customer looked at for a list: their rank in the model's ranking (1 = best), their score and
    group; ``reason`` says why a spared customer was spared (the contact policy's reason, or the journey's:
    ``in_journey``, ``audience``)."""

    __tablename__ = "call_list_members"
    __table_args__ = (
        CheckConstraint("grp IN ('treated', 'holdout', 'spared')", name="grp"),
        CheckConstraint("(grp = 'spared') = (reason IS NOT NULL)", name="reason_iff_spared"),
    )

    list_id: Mapped[str] = mapped_column(ForeignKey("call_lists.id", ondelete="CASCADE"), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    grp: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str | None] = mapped_column(String(32))


__all__ = ["GROUPS", "CallList", "CallListMember"]
