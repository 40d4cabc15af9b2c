"""Tables of CX alerting: every alert raised (``cx_alerts``) and the weeks an index-drop rule was evaluated.

``cx_alerts`` answers "who is responsible" (责任落实) for every alert: its one owner (a member of staff, or
the desk's default queue when nobody was found, with the reason), the event that raised it, the ticket it
opened (alerts about a customer) and, once acted on, when and what was done. The key is the alert's
deterministic key (rule, subject, window), unique, so running the same events again records nothing new.
Alerts about a branch or the bank have no customer, and a ticket needs one: they are recorded here only,
and closed here with the action taken (:func:`omnibank.cx.alerting.close_alert`).

The worker's position in the event log is the shared ``event_consumer_files`` (consumer ``cx.alerts``).
Nothing personal is stored: customers and staff by number, the context a few words without the comment.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Date, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from omnibank.db.base import Base, one_of
from omnibank.db.types import UTCDateTime

SUBJECT_KINDS = ("customer", "branch", "bank")
RULE_KINDS = ("response", "event", "index_drop", "inflow")


class CxAlert(Base):
    """One alert of a CX rule, with its one owner."""

    __tablename__ = "cx_alerts"
    __table_args__ = (
        CheckConstraint(one_of("subject_kind", SUBJECT_KINDS), name="subject_kind"),
        CheckConstraint(one_of("rule_kind", RULE_KINDS), name="rule_kind"),
        CheckConstraint("(owner_staff_id IS NULL) <> (owner_queue IS NULL)", name="exactly_one_owner"),
        Index("ix_cx_alerts_rule_subject", "rule_id", "subject_kind", "subject_id", "window_start"),
        Index("ix_cx_alerts_owner_closed", "owner_staff_id", "closed_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    rule_id: Mapped[str] = mapped_column(String(48))
    rule_kind: Mapped[str] = mapped_column(String(16))
    subject_kind: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[str] = mapped_column(String(32))
    customer_id: Mapped[str | None] = mapped_column(String(32))
    branch_id: Mapped[str | None] = mapped_column(String(32))
    owner_staff_id: Mapped[str | None] = mapped_column(String(32))
    owner_queue: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(200))  # why this owner
    event_id: Mapped[str | None] = mapped_column(String(200))  # None: raised by an index reading
    context: Mapped[str] = mapped_column(String(100))
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime())  # the moment of the event (or reading)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())  # its dedupe window's (event, hour, week)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ticket_id: Mapped[str | None] = mapped_column(String(40), index=True)
    # when it is to be acted on: the desk's SLA policy for kind alert (its ticket's resolution target, or
    # for an alert about a branch or the bank the same target reckoned on the bank's calendar)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    action: Mapped[str | None] = mapped_column(String(500))  # what was done (digit runs masked)
    closed_by: Mapped[str | None] = mapped_column(String(128))


class CxAlertWeek(Base):
    """A week an ``index_drop`` rule was evaluated (once a week, not each loop: an index costs)."""

    __tablename__ = "cx_alert_weeks"

    rule_id: Mapped[str] = mapped_column(String(48), primary_key=True)
    week: Mapped[date] = mapped_column(Date, primary_key=True)  # the bank-local Monday of the week read
    branches: Mapped[int] = mapped_column(Integer)
    alerts: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
