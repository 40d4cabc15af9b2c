"""Reading the outbox: messages listed and filtered, one message, counts by status — what ``omnibank
contact outbox`` shows. Apart because it only reads: showing what was decided needs none of the policy, the
counters, consent or the channels (and the command imports none of them for it).
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omnibank.contact.models import STATUSES, ContactMessage
from omnibank.errors import AppError, NotFound


def list_messages(
    session: Session,
    *,
    status: str | None = None,
    customer_id: str | None = None,
    journey: str | None = None,
    limit: int = 100,
) -> list[ContactMessage]:
    """Outbox rows, newest first, filtered by status, customer and journey."""
    if status is not None and status not in STATUSES:
        raise AppError(f"status: {status!r} is not one of {', '.join(STATUSES)}", code="bad_status")
    if limit < 1:
        raise AppError("limit: at least 1")
    stmt = select(ContactMessage)
    if status is not None:
        stmt = stmt.where(ContactMessage.status == status)
    if customer_id is not None:
        stmt = stmt.where(ContactMessage.customer_id == customer_id)
    if journey is not None:
        stmt = stmt.where(ContactMessage.journey == journey)
    return list(session.scalars(stmt.order_by(ContactMessage.id.desc()).limit(limit)))


def get_message(session: Session, message_id: int) -> ContactMessage:
    row = session.get(ContactMessage, message_id)
    if row is None:
        raise NotFound(f"no message {message_id}")
    return row


def status_counts(session: Session, *, journey: str | None = None) -> dict[str, int]:
    """How many messages are in each status (of a journey, or all)."""
    stmt = select(ContactMessage.status, func.count()).group_by(ContactMessage.status)
    if journey is not None:
        stmt = stmt.where(ContactMessage.journey == journey)
    return {status: int(n) for status, n in session.execute(stmt)}


__all__ = ["get_message", "list_messages", "status_counts"]
