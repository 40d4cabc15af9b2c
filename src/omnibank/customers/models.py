from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Date, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from omnibank.customers.values import CHANNEL_PREFS, GENDERS, OCCUPATIONS, RISK_LEVELS
from omnibank.db.base import Base, one_of
from omnibank.db.types import UTCDateTime


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
    # set by erasure (``omnibank customer erase``): the personal fields above are tombstones from then on
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


IDENTIFIER_KINDS = ("card_id", "wechat_openid", "app_user_id")


class CustomerIdentifier(Base):
    """An identifier that points at one customer besides ``customer_id``: a card number (from
    ``card.issued``), a WeChat openid or an app user id (from ``identity.linked``). Phone and ID number are
    looked up through the blind indexes on ``customers`` instead, so they are never stored here. A card is
    kept as its token (``value``, the keyed blind index the event log holds too) and its number encrypted
    (``value_enc``, bound to ``customer_identifiers.value:<token>``), for the masked display only."""

    __tablename__ = "customer_identifiers"
    __table_args__ = (CheckConstraint(one_of("kind", IDENTIFIER_KINDS), name="kind"),)

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(128), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(32), index=True)
    source: Mapped[str] = mapped_column(String(64))  # e.g. "event:<event_id>" or "merge:<from>"
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    value_enc: Mapped[bytes | None] = mapped_column(LargeBinary)  # a card's number, encrypted


class CustomerMerge(Base):
    """``merged_id`` was merged into ``survivor_id``: its events, tags and identifiers count for the
    survivor from then on. One hop always: merging the survivor later re-points these rows."""

    __tablename__ = "customer_merges"

    merged_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    survivor_id: Mapped[str] = mapped_column(String(32), index=True)
    merged_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(500), default="")
