"""What the policy needs to know about customers, read from the store in bulk: who can be contacted at
all (known, not erased), their do-not-disturb windows and marketing consent — and the policy's parameters
from the settings. Apart because submit (deciding new sends), dispatch (deciding deferred ones again,
checking queued ones once more), the channel routing (:func:`omnibank.contact.routing.reachable_many`) and
the journeys' simulation all read the same standing, one query per 900 customers, and none of them owns it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from omnibank.config import Settings
from omnibank.consent.service import allowed_many
from omnibank.contact.models import ContactDnd, ContactMessage
from omnibank.contact.policy import PolicyConfig
from omnibank.customers.models import Customer

CHUNK = 900  # values in one IN list


def policy_config(settings: Settings) -> PolicyConfig:
    return PolicyConfig.from_settings(settings)


def chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(values), CHUNK):
        yield values[i : i + CHUNK]


@dataclass(frozen=True)
class DndWindow:
    channel: str  # a channel or "all"
    since: datetime
    until: datetime | None

    def covers(self, channel: str, at: datetime) -> bool:
        return (
            (self.channel == "all" or self.channel == channel)
            and self.since <= at
            and (self.until is None or at < self.until)
        )


def dnd_many(session: Session, customer_ids: Collection[str]) -> dict[str, list[DndWindow]]:
    """The do-not-disturb windows not removed, per customer (customers without any left out)."""
    ids = list(dict.fromkeys(customer_ids))
    out: dict[str, list[DndWindow]] = defaultdict(list)
    for chunk in chunks(ids):
        rows = session.execute(
            select(ContactDnd.customer_id, ContactDnd.channel, ContactDnd.since, ContactDnd.until).where(
                ContactDnd.customer_id.in_(chunk), ContactDnd.removed_at.is_(None)
            )
        )
        for cid, channel, since, until in rows:
            out[cid].append(DndWindow(channel, since, until))
    return dict(out)


def in_dnd(windows: Mapping[str, list[DndWindow]], customer_id: str, channel: str, at: datetime) -> bool:
    return any(w.covers(channel, at) for w in windows.get(customer_id, ()))


def known_customers(session: Session, customer_ids: Collection[str]) -> set[str]:
    """Those of ``customer_ids`` that exist and were not erased (the others cannot be contacted)."""
    ids = list(dict.fromkeys(customer_ids))
    found: set[str] = set()
    for chunk in chunks(ids):
        found.update(
            session.scalars(
                select(Customer.customer_id).where(
                    Customer.customer_id.in_(chunk), Customer.erased_at.is_(None)
                )
            )
        )
    return found


def standing(
    session: Session, rows: Sequence[ContactMessage]
) -> tuple[set[str], dict[str, bool], dict[str, list[DndWindow]]]:
    """What the policy needs about the customers of these outbox rows, read in bulk: who is known (not
    erased), marketing consent (of those with marketing rows) and do-not-disturb windows."""
    customers = {r.customer_id for r in rows}
    marketing = {r.customer_id for r in rows if r.purpose == "marketing"}
    consent = allowed_many(session, marketing, "marketing") if marketing else {}
    return known_customers(session, customers), consent, dnd_many(session, customers)


__all__ = [
    "CHUNK",
    "DndWindow",
    "chunks",
    "dnd_many",
    "in_dnd",
    "known_customers",
    "policy_config",
    "standing",
]
