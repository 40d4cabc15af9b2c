"""Holds on a purpose of contact while something of the customer's is open (``contact_holds``).

The service desk holds surveys while a customer's complaint is open — asking someone who is waiting for an
answer to rate us is the harassment the contact policy exists to prevent — and lifts the hold when the
complaint is resolved or closed (a reopened complaint holds again). The policy reads holds in bulk when it
decides; it does not know what a ticket is, so the desk (above it) tells it. Flushes, never commits.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from omnibank.contact.models import ContactHold
from omnibank.contact.policy import PURPOSES
from omnibank.contact.standing import chunks


def hold(session: Session, customer_id: str, *, purpose: str, ref: str, reason: str, now: datetime) -> None:
    """Hold ``purpose`` for the customer under ``ref`` (again, if it was lifted); idempotent."""
    if purpose not in PURPOSES:
        raise ValueError(f"purpose {purpose!r} is not one of {', '.join(PURPOSES)}")
    row = session.scalar(select(ContactHold).where(ContactHold.ref == ref))
    if row is None:
        session.add(
            ContactHold(
                ref=ref, customer_id=customer_id, purpose=purpose, reason=reason, since=now, lifted_at=None
            )
        )
    elif row.lifted_at is not None:
        row.lifted_at = None
        row.since = now
    session.flush()


def lift(session: Session, *, ref: str, now: datetime) -> None:
    """Lift the hold ``ref`` (nothing when there is none)."""
    session.execute(
        update(ContactHold)
        .where(ContactHold.ref == ref, ContactHold.lifted_at.is_(None))
        .values(lifted_at=now)
    )


def held_many(session: Session, customer_ids: Collection[str], purpose: str) -> dict[str, str]:
    """Customers with a hold on ``purpose`` now: customer → the reason it gives."""
    ids = list(dict.fromkeys(customer_ids))
    out: dict[str, str] = {}
    for chunk in chunks(ids):
        rows = session.execute(
            select(ContactHold.customer_id, ContactHold.reason).where(
                ContactHold.customer_id.in_(chunk),
                ContactHold.purpose == purpose,
                ContactHold.lifted_at.is_(None),
            )
        )
        for cid, reason in rows:
            out.setdefault(cid, reason)
    return out


__all__ = ["held_many", "hold", "lift"]
