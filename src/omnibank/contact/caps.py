"""The marketing caps counters in the store (``contact_caps``), taken and given back inside the caller's
transaction. Apart from the outbox because both submit and dispatch take them, and because they are the
store's side of :class:`omnibank.contact.policy.Counters` (the pure policy takes them as it takes its
in-memory ones), not a step of either.

Concurrency: every counter is taken with one statement — ``INSERT … ON CONFLICT DO UPDATE SET n = n + 1
WHERE n < cap RETURNING n`` — exact under concurrent workers on PostgreSQL (the row is locked and the
condition re-read) and trivially on SQLite (one writer). The week counter is taken before the day counter
and a batch is processed in customer order, so two transactions lock counters in the same order and cannot
deadlock each other (a caller that submits several batches in one transaction should sort them too).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from omnibank.contact.models import ContactCap
from omnibank.contact.policy import PolicyConfig, cap_scopes

_TAKE = text(
    "INSERT INTO contact_caps (customer_id, scope, n) VALUES (:c, :s, 1) "
    "ON CONFLICT (customer_id, scope) DO UPDATE SET n = contact_caps.n + 1 "
    "WHERE contact_caps.n < :cap RETURNING n"
)
_GIVE_BACK = text("UPDATE contact_caps SET n = n - 1 WHERE customer_id = :c AND scope = :s AND n > 0")
_READ = text("SELECT n FROM contact_caps WHERE customer_id = :c AND scope = :s")


class StoreCounters:
    """The caps counters in ``contact_caps``, taken inside the caller's transaction: the week counter, then
    the day counter (given back if the day is full), each by one conditional upsert."""

    def __init__(self, session: Session):
        self.session = session

    def _take(self, customer_id: str, scope: str, cap: int) -> bool:
        if cap <= 0:
            return False
        row = self.session.execute(_TAKE, {"c": customer_id, "s": scope, "cap": cap}).first()
        return row is not None

    def _count(self, customer_id: str, scope: str) -> int:
        n = self.session.execute(_READ, {"c": customer_id, "s": scope}).scalar()
        return int(n or 0)

    def take(self, customer_id: str, channel: str, at: datetime, config: PolicyConfig) -> str | None:
        day, week = cap_scopes(channel, at, config)
        if not self._take(customer_id, week, config.week_cap):
            # the same reason the pure counters give: the day is checked first there
            full_day = self._count(customer_id, day) >= config.channel_day_cap
            return "cap_channel_day" if full_day else "cap_week"
        if not self._take(customer_id, day, config.channel_day_cap):
            self.session.execute(_GIVE_BACK, {"c": customer_id, "s": week})  # still locked by us: exact
            return "cap_channel_day"
        return None

    def release(self, customer_id: str, channel: str, at: datetime, config: PolicyConfig) -> None:
        """Give back a send's counters (a queued send refused before it went)."""
        day, week = cap_scopes(channel, at, config)
        self.session.execute(_GIVE_BACK, {"c": customer_id, "s": week})
        self.session.execute(_GIVE_BACK, {"c": customer_id, "s": day})


def cap_counts(session: Session, customer_id: str) -> dict[str, int]:
    """A customer's counters: scope → count."""
    rows = session.execute(
        select(ContactCap.scope, ContactCap.n).where(ContactCap.customer_id == customer_id)
    )
    return {scope: int(n) for scope, n in rows}


__all__ = ["StoreCounters", "cap_counts"]
