from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Date, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from omnibank.db.base import Base, one_of
from omnibank.db.types import UTCDateTime

GENDERS = ("M", "F")
OCCUPATIONS = (
    "employee",
    "civil_servant",
    "business_owner",
    "self_employed",
    "retired",
    "student",
    "farmer",
    "other",
)
RISK_LEVELS = ("C1", "C2", "C3", "C4", "C5")
CHANNEL_PREFS = ("app", "wechat", "sms", "phone", "branch")


class Customer(Base):
    """A retail customer. Name, phone and ID number are encrypted per field; the ``*_bidx`` columns are
    keyed blind indexes for exact lookup. Nothing personal is stored in plaintext."""

    __tablename__ = "customers"
    __table_args__ = (
        CheckConstraint("aum_fen >= 0", name="aum_not_negative"),
        CheckConstraint(one_of("gender", GENDERS), name="gender"),
        CheckConstraint(one_of("occupation", OCCUPATIONS), name="occupation"),
        CheckConstraint(one_of("risk_tolerance", RISK_LEVELS), name="risk_tolerance"),
        CheckConstraint(one_of("channel_pref", CHANNEL_PREFS), name="channel_pref"),
    )

    customer_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name_enc: Mapped[bytes] = mapped_column(LargeBinary)
    phone_enc: Mapped[bytes] = mapped_column(LargeBinary)
    phone_bidx: Mapped[str] = mapped_column(String(32), index=True)
    id_number_enc: Mapped[bytes] = mapped_column(LargeBinary)
    id_number_bidx: Mapped[str] = mapped_column(String(32), index=True)
    gender: Mapped[str] = mapped_column(String(1))
    birth_date: Mapped[date] = mapped_column(Date)
    branch_id: Mapped[str] = mapped_column(ForeignKey("orgs.org_id"), index=True)
    rm_id: Mapped[str | None] = mapped_column(ForeignKey("staff.staff_id"), index=True)
    aum_fen: Mapped[int] = mapped_column(BigInteger)
    occupation: Mapped[str] = mapped_column(String(32))
    risk_tolerance: Mapped[str] = mapped_column(String(2))
    channel_pref: Mapped[str] = mapped_column(String(16))
    marketing_consent: Mapped[bool] = mapped_column(Boolean)
    registered_at: Mapped[date] = mapped_column(Date)
    fingerprint: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
