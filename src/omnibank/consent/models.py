from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from omnibank.db.base import Base, one_of
from omnibank.db.types import UTCDateTime

PURPOSES = ("marketing", "profiling", "data_sharing")
CONSENT_CHANNELS = ("app", "wechat", "branch", "phone", "sms", "web")


class ConsentRecord(Base):
    """Append-only history of a customer's consent per purpose (PIPL): granted or revoked, when, through
    which channel and on what evidence (a reference such as a form id, never personal data). The current
    state of a purpose is its latest record (highest id)."""

    __tablename__ = "consent_records"
    __table_args__ = (
        CheckConstraint(one_of("purpose", PURPOSES), name="purpose"),
        CheckConstraint(one_of("channel", CONSENT_CHANNELS), name="channel"),
        Index("ix_consent_records_customer_purpose", "customer_id", "purpose", "id"),
        Index("ix_consent_records_purpose", "purpose", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.customer_id"))
    purpose: Mapped[str] = mapped_column(String(16))
    granted: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    channel: Mapped[str] = mapped_column(String(16))
    evidence: Mapped[str] = mapped_column(String(200), default="")
    actor: Mapped[str] = mapped_column(String(128))
