"""Reach and conversion funnels of the journeys' sends (issue 17, X5), from what the store records already.

Per journey and step (and channel, or the customer's home branch, with ``by``), from the contact outbox
(:class:`~omnibank.contact.models.ContactMessage`, the journey sends: those with a journey):

* ``sent``: messages a gateway took (``sent_at``); ``delivered`` (a delivery receipt) and ``reach_rate`` =
  delivered / sent; ``clicked`` (clicked or opened) and ``click_rate`` = clicked / delivered; ``failed``;
* ``converted``: sent messages whose customer's journey entry (the one live at the send: entered at or
  before it) converted after the send, and ``conversion_rate`` = converted / sent;
* not (yet) sent: ``queued``, ``deferred`` and ``suppressed``, the last two also by reason.

Rates are fractions as ``Decimal`` rounded to 0.001 (0.1%), None when the denominator is 0. Why the outbox
rather than the journeys' step runs that :func:`omnibank.journeys.report.attribution` counts: a funnel by
channel and branch needs one row per message with its channel and customer, and the outbox has its final
state (a deferred send that went later counts once, as sent); the control group is never sent anything, so
the uplift over it stays the attribution report's. The counting is done in the database, grouped.

Scope: a viewer with a customer scope or a member of staff sees the funnel of the customers they may see
(the rule of :func:`omnibank.customers.repository.customer_in_scope`); no viewer: the whole bank.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, select
from sqlalchemy.orm import Session

from omnibank.contact.models import ContactMessage
from omnibank.customers.models import Customer
from omnibank.customers.repository import customer_in_scope, staff_scope
from omnibank.errors import InputRefused, NotFound
from omnibank.journeys.models import Journey, JourneyEntry
from omnibank.leads.repository import Viewer, staff_member

__all__ = ["BY", "COLUMNS", "FunnelRow", "funnel", "rate"]

BY = (None, "channel", "branch")
#: the keys of :meth:`FunnelRow.as_dict`, in order
COLUMNS = (
    "journey",
    "step",
    "channel",
    "branch",
    "sent",
    "delivered",
    "reach_rate",
    "clicked",
    "click_rate",
    "converted",
    "conversion_rate",
    "failed",
    "queued",
    "deferred",
    "deferred_by",
    "suppressed",
    "suppressed_by",
)
_PER_MILLE = Decimal("0.001")


def rate(part: int, whole: int) -> Decimal | None:
    """``part / whole`` rounded half up to 0.001 (0.1%); None when ``whole`` is 0."""
    if whole == 0:
        return None
    return (Decimal(part) / Decimal(whole)).quantize(_PER_MILLE, rounding=ROUND_HALF_UP)


@dataclass
class FunnelRow:
    """One journey step's funnel (of a channel or branch when grouped so; else None there)."""

    journey: str
    step: str
    channel: str | None = None
    branch: str | None = None
    sent: int = 0
    delivered: int = 0
    clicked: int = 0
    converted: int = 0
    failed: int = 0
    queued: int = 0
    deferred: Counter[str] = field(default_factory=Counter)  # reason → messages
    suppressed: Counter[str] = field(default_factory=Counter)

    @property
    def reach_rate(self) -> Decimal | None:
        return rate(self.delivered, self.sent)

    @property
    def click_rate(self) -> Decimal | None:
        return rate(self.clicked, self.delivered)

    @property
    def conversion_rate(self) -> Decimal | None:
        return rate(self.converted, self.sent)

    def as_dict(self) -> dict[str, Any]:
        """Plain values for a table, CSV or JSON (:data:`COLUMNS`); reasons as ``reason n, reason n``."""
        return {
            "journey": self.journey,
            "step": self.step,
            "channel": self.channel,
            "branch": self.branch,
            "sent": self.sent,
            "delivered": self.delivered,
            "reach_rate": self.reach_rate,
            "clicked": self.clicked,
            "click_rate": self.click_rate,
            "converted": self.converted,
            "conversion_rate": self.conversion_rate,
            "failed": self.failed,
            "queued": self.queued,
            "deferred": sum(self.deferred.values()),
            "deferred_by": _reasons(self.deferred),
            "suppressed": sum(self.suppressed.values()),
            "suppressed_by": _reasons(self.suppressed),
        }


def _reasons(counts: Counter[str]) -> str:
    return ", ".join(f"{k} {n}" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _visible(session: Session, viewer: Viewer | None) -> list[ColumnElement[bool]]:
    if viewer is None:
        return []
    found: list[ColumnElement[bool]] = []
    if viewer.scope is not None:
        found.append(customer_in_scope(ContactMessage.customer_id, viewer.scope))
    if viewer.staff_id is not None:
        staff = staff_member(session, viewer.staff_id)
        sees = staff_scope(session, org_id=staff.org_id, staff_id=staff.staff_id, role=staff.role)
        found.append(customer_in_scope(ContactMessage.customer_id, sees))
    return found


def funnel(
    session: Session, *, journey: str | None = None, by: str | None = None, viewer: Viewer | None = None
) -> list[FunnelRow]:
    """The funnel rows of every journey's steps (or of ``journey``'s), by ``channel`` or ``branch`` or
    neither, in the order of the journey's steps (their first sends), then channel or branch."""
    if by not in BY:
        raise InputRefused(f"funnel: cannot group by {by!r}; use channel or branch (or leave --by out)")
    if journey is not None and session.get(Journey, journey) is None:
        raise NotFound(f"no journey {journey!r} (omnibank journey list shows the journeys started)")
    m = ContactMessage
    e = JourneyEntry
    converted = exists().where(
        e.journey == m.journey,
        e.customer_id == m.customer_id,
        e.entered_at <= m.sent_at,
        e.converted_at > m.sent_at,
    )
    group: list[Any] = [m.journey, m.step]
    if by == "channel":
        group.append(m.channel)
    elif by == "branch":
        group.append(Customer.branch_id)
    q = select(
        *group,
        m.status,
        m.reason,
        func.count(),
        func.count(m.sent_at),
        func.count(m.delivered_at),
        func.count(m.clicked_at),
        func.count(m.failed_at),
        func.sum(case((and_(m.sent_at.is_not(None), converted), 1), else_=0)),
        func.min(m.asked_at),
    ).where(m.journey.is_not(None), *_visible(session, viewer))
    if by == "branch":
        q = q.outerjoin(Customer, Customer.customer_id == m.customer_id)
    if journey is not None:
        q = q.where(m.journey == journey)
    rows: dict[tuple[str, str, str | None], FunnelRow] = {}
    first: dict[tuple[str, str], datetime] = {}
    for r in session.execute(q.group_by(*group, m.status, m.reason)):
        jid, step = str(r[0]), r[1] or ""
        other = r[2] if by is not None else None
        status, reason, n, sent, delivered, clicked, failed, conv, asked = r[len(group) :]
        row = rows.get((jid, step, other))
        if row is None:
            row = rows[(jid, step, other)] = FunnelRow(jid, step)
            if by == "channel":
                row.channel = other
            elif by == "branch":
                row.branch = other
        row.sent += int(sent)
        row.delivered += int(delivered)
        row.clicked += int(clicked)
        row.failed += int(failed)
        row.converted += int(conv or 0)
        if status == "queued":
            row.queued += int(n)
        elif status == "deferred":
            row.deferred[reason or "unknown"] += int(n)
        elif status == "suppressed":
            row.suppressed[reason or "unknown"] += int(n)
        if asked is not None and ((jid, step) not in first or asked < first[(jid, step)]):
            first[(jid, step)] = asked
    return sorted(
        rows.values(),
        key=lambda x: (x.journey, first[(x.journey, x.step)], x.step, x.channel or x.branch or ""),
    )
