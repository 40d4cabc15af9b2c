"""Tables of the contact policy: the outbox (one row per submitted send, with its decision), the caps
counters and do-not-disturb."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from omnibank.contact.policy import CHANNELS, PURPOSES
from omnibank.db.base import Base, one_of
from omnibank.db.types import UTCDateTime

STATUSES = ("queued", "deferred", "suppressed", "sent", "delivered", "failed", "clicked")
DND_CHANNELS = ("all", *CHANNELS)


class ContactMessage(Base):
    """The outbox: one row per submitted send (``key`` unique), its decision and what became of it.

    ``status``: ``queued`` (to go at ``scheduled_for``), ``deferred`` (quiet hours: decided again at
    ``scheduled_for``), ``suppressed`` (``reason`` says why), ``sent`` (a gateway took it), ``delivered``,
    ``failed`` (``reason``), ``clicked``. ``payload`` is JSON of template variables, never personal data.
    ``events_pending``: receipt events not yet confirmed in the event log (emitted again, by their
    deterministic ids, until they are). ``claimed_until``: a dispatcher is handing it to a gateway."""

    __tablename__ = "contact_messages"
    __table_args__ = (
        CheckConstraint(one_of("channel", CHANNELS), name="channel"),
        CheckConstraint(one_of("purpose", PURPOSES), name="purpose"),
        CheckConstraint(one_of("status", STATUSES), name="status"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        Index("ix_contact_messages_status_scheduled_for", "status", "scheduled_for"),
        Index("ix_contact_messages_customer_id", "customer_id", "asked_at"),
        Index("ix_contact_messages_journey", "journey", "step"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    customer_id: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(16))
    journey: Mapped[str | None] = mapped_column(String(64))
    step: Mapped[str | None] = mapped_column(String(64))
    template: Mapped[str | None] = mapped_column(String(500))
    payload: Mapped[str] = mapped_column(Text, default="{}")
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(200))
    asked_at: Mapped[datetime] = mapped_column(UTCDateTime())  # when the send was asked for
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    scheduled_for: Mapped[datetime] = mapped_column(UTCDateTime())  # when it may go (or be decided again)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())  # the time of its current decision
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    clicked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider_ref: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    events_pending: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ContactCap(Base):
    """A marketing caps counter: how many marketing sends a customer got in a scope —
    ``d:<channel>:<day>`` (bank-local day) or ``w:<Monday>`` (natural week). Taken by a conditional upsert,
    never read-modify-write."""

    __tablename__ = "contact_caps"
    __table_args__ = (CheckConstraint("n >= 0", name="n_not_negative"),)

    customer_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    scope: Mapped[str] = mapped_column(String(40), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)


class ContactDnd(Base):
    """Do-not-disturb: the customer is not to be contacted on ``channel`` (or ``all``) from ``since`` until
    ``until`` (None: until removed). Removal keeps the row (``removed_at``, ``removed_by``): the history
    stays. ``reason`` is a short note without personal data."""

    __tablename__ = "contact_dnd"
    __table_args__ = (
        CheckConstraint(one_of("channel", DND_CHANNELS), name="channel"),
        Index("ix_contact_dnd_customer_id", "customer_id", "channel"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(200))
    since: Mapped[datetime] = mapped_column(UTCDateTime())
    until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(128))
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    removed_by: Mapped[str | None] = mapped_column(String(128))


class ContactHold(Base):
    """A hold on one purpose of contact for a customer while something of theirs is open: the service desk
    holds ``survey`` while a complaint is open (``ref`` = ``ticket:<id>``; a survey then is suppressed
    ``open_complaint``) and lifts it when the complaint is resolved. Lifted holds keep their row."""

    __tablename__ = "contact_holds"
    __table_args__ = (
        CheckConstraint(one_of("purpose", PURPOSES), name="purpose"),
        Index("ix_contact_holds_customer_id", "customer_id", "purpose"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    ref: Mapped[str] = mapped_column(String(80), unique=True)  # what holds it, e.g. ticket:TK…
    customer_id: Mapped[str] = mapped_column(String(32))
    purpose: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(40))  # the suppression reason it gives, e.g. open_complaint
    since: Mapped[datetime] = mapped_column(UTCDateTime())
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
