"""Reading the outbox and do-not-disturb: messages listed and filtered, one message, counts by status — what
``omnibank contact outbox`` and the console's contact page show — and the do-not-disturb entries (``omnibank
contact dnd list``). A ``scope`` (the API's and the console's org-subtree rule, None: the whole bank, as the
CLI) keeps a reader to the customers they see; rows carry customer numbers, never names or phones. Apart
because it only reads: showing what was decided needs none of the policy, the counters, consent or the
channels (and the command imports none of them for it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from omnibank.contact.models import STATUSES, ContactDnd, ContactMessage
from omnibank.customers.models import Customer
from omnibank.customers.repository import Scope, scoped
from omnibank.errors import AppError, NotFound

S = TypeVar("S", bound="Select[Any]")


def _seen(column: InstrumentedAttribute[str], scope: Scope | None) -> ColumnElement[bool] | None:
    """The condition that ``column`` names a customer ``scope`` sees (None or the whole bank: none)."""
    if scope is None or scope.whole:
        return None
    return column.in_(scoped(select(Customer.customer_id), scope))


def _within(stmt: S, column: InstrumentedAttribute[str], scope: Scope | None) -> S:
    seen = _seen(column, scope)
    return stmt if seen is None else stmt.where(seen)


def list_messages(
    session: Session,
    *,
    status: str | None = None,
    customer_id: str | None = None,
    journey: str | None = None,
    limit: int = 100,
    offset: int = 0,
    scope: Scope | None = None,
) -> list[ContactMessage]:
    """Outbox rows, newest first, filtered by status, customer and journey (``offset``: rows skipped, for
    pages)."""
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
    stmt = _within(stmt, ContactMessage.customer_id, scope)
    return list(session.scalars(stmt.order_by(ContactMessage.id.desc()).offset(max(offset, 0)).limit(limit)))


def get_message(session: Session, message_id: int) -> ContactMessage:
    row = session.get(ContactMessage, message_id)
    if row is None:
        raise NotFound(f"no message {message_id}")
    return row


def status_counts(
    session: Session, *, journey: str | None = None, scope: Scope | None = None
) -> dict[str, int]:
    """How many messages are in each status (of a journey, or all)."""
    stmt = select(ContactMessage.status, func.count()).group_by(ContactMessage.status)
    if journey is not None:
        stmt = stmt.where(ContactMessage.journey == journey)
    seen = _seen(ContactMessage.customer_id, scope)
    if seen is not None:
        stmt = stmt.where(seen)
    return {status: int(n) for status, n in session.execute(stmt)}


def dnd_entries(
    session: Session,
    *,
    customer_id: str | None = None,
    active_at: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
    scope: Scope | None = None,
) -> list[ContactDnd]:
    """Do-not-disturb windows, newest first: of a customer or all; only those open at ``active_at``, if
    given (else every window, removed ones too); of the customers ``scope`` sees."""
    stmt = select(ContactDnd)
    if customer_id is not None:
        stmt = stmt.where(ContactDnd.customer_id == customer_id)
    if active_at is not None:
        stmt = stmt.where(
            ContactDnd.removed_at.is_(None),
            ContactDnd.since <= active_at,
            (ContactDnd.until.is_(None)) | (ContactDnd.until > active_at),
        )
    stmt = _within(stmt, ContactDnd.customer_id, scope)
    return list(session.scalars(stmt.order_by(ContactDnd.id.desc()).offset(max(offset, 0)).limit(limit)))


__all__ = ["dnd_entries", "get_message", "list_messages", "status_counts"]
