"""Tables of the leads domain: a lead handed to branch staff, and the history of its status.

A lead belongs to the customer's relationship manager (``owner_staff_id``) or, when the customer has none,
to the queue of the customer's branch (``org_id``; owner empty). Its status moves new → contacted → won or
lost (new → won / lost directly too); won and lost are closed for good. A new lead past ``due_at`` is
escalated once to the nearest branch manager (``escalated_to``). Every change is a ``lead_history`` row,
which doubles as the outbox of the lead's events: ``emitted_at`` is set once the event is in the event log.
Nothing personal is stored here: the customer is referred to by number, and notes have digit runs masked.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from omnibank.db.base import Base, one_of
from omnibank.db.types import UTCDateTime

LEAD_STATUSES = ("new", "contacted", "won", "lost")
OPEN_STATUSES = ("new", "contacted")
CLOSED_STATUSES = ("won", "lost")
#: what a history row records; each happens at most once per lead (so ``lead:<id>:<action>`` is unique)
LEAD_ACTIONS = ("created", "contacted", "won", "lost", "escalated")


class Lead(Base):
    """A follow-up task for branch staff about one customer (J3 opportunity hand-off)."""

    __tablename__ = "leads"
    __table_args__ = (
        CheckConstraint(one_of("status", LEAD_STATUSES), name="status"),
        CheckConstraint(
            "(closed_at IS NULL AND (status = 'new' OR status = 'contacted')) "
            "OR (closed_at IS NOT NULL AND (status = 'won' OR status = 'lost'))",
            name="closed_when_won_or_lost",
        ),
        # escalation scans the new leads past due; lists filter a queue by status
        Index("ix_leads_status_due_at", "status", "due_at"),
        Index("ix_leads_org_id_status", "org_id", "status"),
    )

    lead_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)  # the dedupe key: one lead per key
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.customer_id"), index=True)
    source: Mapped[str] = mapped_column(String(100))  # "journey:<id>", "manual", …
    journey: Mapped[str | None] = mapped_column(String(64))
    step: Mapped[str | None] = mapped_column(String(64))
    product_id: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(String(500))
    owner_staff_id: Mapped[str | None] = mapped_column(ForeignKey("staff.staff_id"), index=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.org_id"))  # the queue: the customer's branch
    status: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    contacted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    escalated_to: Mapped[str | None] = mapped_column(ForeignKey("staff.staff_id"), index=True)


class LeadHistory(Base):
    """One change of a lead: its creation, a status move, its escalation (status unchanged)."""

    __tablename__ = "lead_history"
    __table_args__ = (
        CheckConstraint(one_of("action", LEAD_ACTIONS), name="action"),
        CheckConstraint(one_of("to_status", LEAD_STATUSES), name="to_status"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.lead_id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    from_status: Mapped[str | None] = mapped_column(String(16))  # None for the creation
    to_status: Mapped[str] = mapped_column(String(16))
    by: Mapped[str] = mapped_column(String(128))  # a staff id, "user:<name>", "system:<job>", …
    note: Mapped[str | None] = mapped_column(String(500))
    # the staff member the event names (owner, who acted, or the branch manager escalated to)
    staff_id: Mapped[str | None] = mapped_column(String(32))
    emitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
