"""Tables of the service desk: tickets, their history, their escalations, surge alerts and the intake's
progress through the event log.

A ticket has exactly one owner at any time: a member of staff (``owner_staff_id``) or a queue
(``owner_queue``), never both and never neither (a CHECK says so). Its history is the record the SLA clocks
are computed from (:mod:`omnibank.service.sla`): a status row for every status it entered, a ``responded``
or ``updated`` row for every answer, plus assignments, escalations and supplier steps, which do not move a
clock. Each history row doubles as the outbox of the ticket's event (``ticket.<action>``, id
``ticket:<ticket_id>:<seq>``): ``emitted_at`` is set once the event is in the log.

Nothing personal is stored in plaintext: the customer is referred to by number, the subject and notes have
digit runs masked, and the complaint's own words (which may name people) are encrypted
(``description_enc``), shown only to those who may read personal data, audited.

The ``sla_*`` columns are a cache of what the clocks said at the last change or escalation pass (so the worker
finds the tickets whose next level is due with one indexed query); the truth is always recomputed from the
history, so editing the calendar or the policy changes nothing stored but the cache.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from omnibank.db.base import Base, one_of
from omnibank.db.types import UTCDateTime

TICKET_KINDS = ("complaint", "inquiry", "request", "alert")  # alert: raised by a CX alert rule
TICKET_PRIORITIES = ("low", "normal", "high", "urgent")
TICKET_STATUSES = (
    "new", "assigned", "in_progress", "waiting_customer", "waiting_supplier", "resolved", "closed",
    "reopened",
)  # fmt: skip
OPEN_STATUSES = ("new", "assigned", "in_progress", "waiting_customer", "waiting_supplier", "reopened")
#: what a history row records
TICKET_ACTIONS = (
    "opened", "assigned", "status", "responded", "updated", "escalated", "supplier_notified",
    "supplier_answered",
)  # fmt: skip
#: the channels of the data contract plus the two a complaint may also come by
TICKET_CHANNELS = (
    "app", "wechat", "sms", "phone", "branch", "wecom", "web", "partner", "phone_hotline", "regulator",
    "assistant",
)  # fmt: skip


class Ticket(Base):
    """A complaint, inquiry or request of one customer, with one owner."""

    __tablename__ = "tickets"
    __table_args__ = (
        CheckConstraint(one_of("kind", TICKET_KINDS), name="kind"),
        CheckConstraint(one_of("priority", TICKET_PRIORITIES), name="priority"),
        CheckConstraint(one_of("status", TICKET_STATUSES), name="status"),
        CheckConstraint("(owner_staff_id IS NULL) <> (owner_queue IS NULL)", name="exactly_one_owner"),
        Index("ix_tickets_status_sla_next_at", "status", "sla_next_at"),
        Index("ix_tickets_owner_queue_status", "owner_queue", "status"),
        Index("ix_tickets_owner_staff_id_status", "owner_staff_id", "status"),
        Index("ix_tickets_queue_opened_at", "queue", "opened_at"),
    )

    ticket_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)  # one ticket per key: a retry opens nothing
    kind: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(32))
    customer_id: Mapped[str] = mapped_column(String(32), index=True)
    org_id: Mapped[str | None] = mapped_column(String(32), index=True)  # the customer's branch at opening
    benefit_id: Mapped[str | None] = mapped_column(String(64))
    coupon_id: Mapped[str | None] = mapped_column(String(64))
    supplier_id: Mapped[str | None] = mapped_column(String(32), index=True)
    subject: Mapped[str] = mapped_column(String(200))
    description_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    source: Mapped[str] = mapped_column(String(100))  # cli, api, event:complaint.filed, import, assistant
    queue: Mapped[str] = mapped_column(String(64))  # the queue routing chose (kept when a person owns it)
    status: Mapped[str] = mapped_column(String(24))
    owner_staff_id: Mapped[str | None] = mapped_column(ForeignKey("staff.staff_id"))
    owner_queue: Mapped[str | None] = mapped_column(String(64))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # the clocks' cache (see the module's docstring)
    sla_level: Mapped[str | None] = mapped_column(String(16))
    sla_next_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sla_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # the resolution target's due time
    sla_breached: Mapped[bool] = mapped_column(Boolean, default=False)
    sla_error: Mapped[str | None] = mapped_column(String(300))  # e.g. no holiday data for the year
    # the supplier's part (a ticket about a benefit)
    supplier_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    supplier_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    supplier_answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    supplier_attempts: Mapped[int] = mapped_column(Integer, default=0)


class TicketHistory(Base):
    """One change of a ticket, in order (``seq``); the ticket's event once it is emitted."""

    __tablename__ = "ticket_history"
    __table_args__ = (
        CheckConstraint(one_of("action", TICKET_ACTIONS), name="action"),
        UniqueConstraint("ticket_id", "seq"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.ticket_id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(24))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str] = mapped_column(String(24))  # the status after the change
    by: Mapped[str] = mapped_column(String(128))  # a staff id, user:<name>, system:<job>, import, …
    staff_id: Mapped[str | None] = mapped_column(String(32))  # owner assigned, or escalated to
    queue: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(String(200))  # e.g. "resolution breach" of an escalation
    note: Mapped[str | None] = mapped_column(String(500))  # digit runs masked
    emitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)


class TicketEscalation(Base):
    """A level of a target reached and acted on: once per ticket, target, level and round (its due time)."""

    __tablename__ = "ticket_escalations"
    __table_args__ = (UniqueConstraint("ticket_id", "target", "level", "round_due"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.ticket_id"), index=True)
    target: Mapped[str] = mapped_column(String(24))
    level: Mapped[str] = mapped_column(String(16))
    round_due: Mapped[datetime] = mapped_column(UTCDateTime())
    reached_at: Mapped[datetime] = mapped_column(UTCDateTime())
    to_staff_id: Mapped[str | None] = mapped_column(String(32))  # None: nobody above to tell
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class SurgeAlert(Base):
    """A queue's inflow in an hour above the configured multiple of its usual rate: alerted once an hour."""

    __tablename__ = "ticket_surge_alerts"
    __table_args__ = (UniqueConstraint("queue", "hour"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    queue: Mapped[str] = mapped_column(String(64))
    hour: Mapped[datetime] = mapped_column(UTCDateTime())  # the hour's end (the alert's moment, floored)
    inflow: Mapped[int] = mapped_column(Integer)
    usual_per_hour: Mapped[str] = mapped_column(String(16))  # a decimal as text
    to_staff_id: Mapped[str | None] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class TicketIntakeOffset(Base):
    """An event-log file the intake (tickets from ``complaint.filed`` / ``service.request``) has read."""

    __tablename__ = "ticket_intake_offsets"

    path: Mapped[str] = mapped_column(String(500), primary_key=True)
    events: Mapped[int] = mapped_column(Integer)
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime())
