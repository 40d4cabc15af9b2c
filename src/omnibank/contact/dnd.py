"""Do-not-disturb: putting a customer on it (for a channel or ``all``), taking them off, listing the
windows; each change audited. Apart from submit and dispatch, which only read the open windows (through
:func:`omnibank.contact.standing.dnd_many`): this is the staff's side, a customer's request recorded and
its history kept.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from omnibank.audit import service as audit
from omnibank.contact.models import DND_CHANNELS, ContactDnd
from omnibank.contact.outbox import MAX_REASON
from omnibank.contact.views import dnd_entries
from omnibank.customers.models import Customer
from omnibank.errors import AppError, Conflict, NotFound
from omnibank.kit.masking import mask_numbers


def _check_dnd_channel(channel: str) -> str:
    if channel not in DND_CHANNELS:
        raise AppError(f"channel: {channel!r} is not one of {', '.join(DND_CHANNELS)}", code="bad_channel")
    return channel


def add_dnd(
    session: Session,
    customer_id: str,
    *,
    channel: str = "all",
    reason: str,
    until: datetime | None = None,
    actor: str,
    now: datetime,
    source: str = "cli",
) -> ContactDnd:
    """Put a customer on do-not-disturb for a channel (or ``all``) from ``now`` until ``until`` (None: until
    removed); marketing and service sends to it are suppressed ``dnd``. Audited. Refuses an unknown
    customer, an end not after ``now``, and a second window for the same channel while one is open."""
    _check_dnd_channel(channel)
    reason = mask_numbers(reason.strip())
    if not reason:
        raise AppError("reason: say why (e.g. 客户来电要求勿扰), without personal data", code="bad_reason")
    if len(reason) > MAX_REASON:
        raise AppError(f"reason: at most {MAX_REASON} characters", code="bad_reason")
    if until is not None and until <= now:
        raise AppError(f"until: {until.isoformat()} is not after now ({now.isoformat()})", code="bad_until")
    if session.get(Customer, customer_id) is None:
        raise NotFound(f"no customer {customer_id}")
    for existing in list_dnd(session, customer_id=customer_id, active_at=now):
        if existing.channel == channel:
            raise Conflict(
                f"{customer_id} is on do-not-disturb for {channel} already (since "
                f"{existing.since.isoformat()}); remove it first to change it",
                code="dnd_exists",
            )
    row = ContactDnd(
        customer_id=customer_id, channel=channel, reason=reason, since=now, until=until, created_by=actor
    )
    session.add(row)
    session.flush()
    audit.record(
        session, actor=actor, action="contact.dnd_add", subject_type="customer", subject_id=customer_id,
        detail={"channel": channel, "until": until.isoformat() if until else None, "dnd": row.id},
        source=source, reason=reason, at=now,
    )  # fmt: skip
    return row


def remove_dnd(
    session: Session,
    customer_id: str,
    *,
    channel: str | None = None,
    actor: str,
    now: datetime,
    source: str = "cli",
) -> int:
    """End the customer's open do-not-disturb windows (of ``channel``, or all of them) now; how many.
    Audited. Nothing open: NotFound."""
    if channel is not None:
        _check_dnd_channel(channel)
    open_rows = [
        r
        for r in list_dnd(session, customer_id=customer_id, active_at=now)
        if channel is None or r.channel == channel
    ]
    if not open_rows:
        what = f" for {channel}" if channel else ""
        raise NotFound(f"{customer_id} has no do-not-disturb{what} to remove")
    for r in open_rows:
        r.removed_at, r.removed_by = now, actor
    session.flush()
    audit.record(
        session, actor=actor, action="contact.dnd_remove", subject_type="customer", subject_id=customer_id,
        detail={"channels": [r.channel for r in open_rows], "dnd": [r.id for r in open_rows]},
        source=source, at=now,
    )  # fmt: skip
    return len(open_rows)


def list_dnd(
    session: Session,
    *,
    customer_id: str | None = None,
    active_at: datetime | None = None,
    limit: int = 1000,
) -> list[ContactDnd]:
    """Do-not-disturb windows, newest first (:func:`omnibank.contact.views.dnd_entries`, the whole bank)."""
    return dnd_entries(session, customer_id=customer_id, active_at=active_at, limit=limit)


__all__ = ["add_dnd", "list_dnd", "remove_dnd"]
