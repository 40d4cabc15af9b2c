from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Date, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from omnibank.db.base import Base
from omnibank.db.types import UTCDateTime


class TagDefinition(Base):
    """A computed tag: customers matching ``expression`` (the expression language) carry it."""

    __tablename__ = "tag_definitions"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    category: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text, default="")
    expression: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(500), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CustomerTag(Base):
    """A tag a customer carries now, and since which as-of date."""

    __tablename__ = "customer_tags"
    __table_args__ = (Index("ix_customer_tags_tag", "tag"),)

    customer_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    since: Mapped[date] = mapped_column(Date)


class CustomerTagChange(Base):
    """History: a customer gained or lost a tag at a computation as of a date."""

    __tablename__ = "customer_tag_changes"
    __table_args__ = (
        CheckConstraint("change = 'gained' OR change = 'lost'", name="change"),
        Index("ix_customer_tag_changes_customer", "customer_id", "tag"),
        Index("ix_customer_tag_changes_tag_as_of", "tag", "as_of"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(32))
    tag: Mapped[str] = mapped_column(String(64))
    change: Mapped[str] = mapped_column(String(8))
    as_of: Mapped[date] = mapped_column(Date)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime())
