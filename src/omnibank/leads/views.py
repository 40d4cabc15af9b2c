"""Reading leads, once for the CLI, the API and the console: a page of the leads a viewer sees (masked,
audited), an RM's own leads, the branch queue, one lead with its history, and the follow-up (a status change
on a lead the viewer sees). The access rule is :mod:`omnibank.leads.repository`'s; the move rules are
:func:`omnibank.leads.service.set_status`'s."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from omnibank.audit import service as audit
from omnibank.customers.repository import Scope
from omnibank.kit.crypto import FieldCipher
from omnibank.leads import repository, service
from omnibank.leads.models import OPEN_STATUSES, Lead
from omnibank.leads.repository import Masked, Viewer
from omnibank.leads.service import Change, HistoryRead, LeadRead
from omnibank.users.models import User

MASKED_FIELDS = ["name", "phone"]


@dataclass(frozen=True)
class LeadItem:
    """A lead with its customer's masked name and phone."""

    lead: LeadRead
    name: str
    phone: str


@dataclass(frozen=True)
class LeadPage:
    items: list[LeadItem]
    next_after: str | None  # the last lead id when the page is full (keyset: pass as ``after``)


@dataclass(frozen=True)
class LeadDetail:
    item: LeadItem
    history: list[HistoryRead]


def _items(leads: list[LeadRead], masked: dict[str, Masked]) -> list[LeadItem]:
    out = []
    for lead in leads:
        m = masked.get(lead.customer_id, Masked("", ""))
        out.append(LeadItem(lead, m.name, m.phone))
    return out


def lead_page(
    session: Session,
    cipher: FieldCipher,
    viewer: Viewer,
    *,
    now: datetime,
    actor: str,
    source: str = "cli",
    audit_detail: dict[str, Any] | None = None,
    status: str | None = None,
    overdue: bool = False,
    owner: str | None = None,
    escalated: bool | None = None,
    after: str | None = None,
    limit: int = 50,
) -> LeadPage:
    """The viewer's leads, soonest due first (filters as :func:`omnibank.leads.repository.page`), names and
    phones masked; the view is audited (``lead.list``, the customers shown)."""
    leads = repository.page(session, viewer, now=now, status=status, overdue=overdue, owner=owner,
                            escalated=escalated, after=after, limit=limit)  # fmt: skip
    shown = sorted({x.customer_id for x in leads})
    masked = repository.masked_customers(session, cipher, shown)
    audit.record(
        session, actor=actor, action="lead.list", subject_type="lead", subject_id=None,
        detail={**(audit_detail or {}), "shown": shown, "fields": MASKED_FIELDS}, source=source, at=now,
    )  # fmt: skip
    return LeadPage(_items(leads, masked), leads[-1].lead_id if leads and len(leads) == limit else None)


def my_leads(
    session: Session,
    cipher: FieldCipher,
    scope: Scope,
    staff_id: str | None,
    *,
    now: datetime,
    actor: str,
    source: str,
    status: str | None = None,
    after: str | None = None,
    limit: int = 50,
) -> LeadPage:
    """The leads assigned to ``staff_id`` among those the scope sees, soonest due first (no staff id: an
    API token or a user who is not staff — none)."""
    if staff_id is None:
        return LeadPage([], None)
    return lead_page(session, cipher, Viewer(scope=scope), now=now, actor=actor, source=source,
                     status=status, owner=staff_id, after=after, limit=limit)  # fmt: skip


def branch_queue(
    session: Session,
    cipher: FieldCipher,
    scope: Scope,
    *,
    now: datetime,
    actor: str,
    source: str,
    status: str | None = None,
    after: str | None = None,
    limit: int = 50,
) -> LeadPage:
    """The unassigned leads (the branch queue) of the customers the scope sees, soonest due first."""
    return lead_page(session, cipher, Viewer(scope=scope), now=now, actor=actor, source=source,
                     status=status, owner="none", after=after, limit=limit)  # fmt: skip


def lead_detail(
    session: Session,
    cipher: FieldCipher,
    viewer: Viewer,
    lead_id: str,
    *,
    now: datetime,
    actor: str,
    source: str = "cli",
    audit_detail: dict[str, Any] | None = None,
    record: bool = True,
) -> LeadDetail:
    """One lead the viewer sees, with its history (else :class:`NotFound`); audited (``lead.view``) unless
    ``record`` is false (the answer to a change, audited as the change)."""
    lead = repository.get(session, viewer, lead_id)
    masked = repository.masked_customers(session, cipher, [lead.customer_id])
    rows = service.history(session, lead_id)
    if record:
        audit.record(
            session, actor=actor, action="lead.view", subject_type="lead", subject_id=lead_id,
            detail={**(audit_detail or {}), "customer_id": lead.customer_id}, source=source, at=now,
        )  # fmt: skip
    return LeadDetail(_items([lead], masked)[0], rows)


def set_status(
    session: Session,
    viewer: Viewer,
    lead_id: str,
    status: str,
    *,
    by: str,
    staff_id: str | None,
    now: datetime,
    note: str | None = None,
    source: str = "cli",
) -> tuple[LeadRead, Change]:
    """The follow-up of a lead the viewer sees (else :class:`NotFound`: out of scope looks like not there):
    the lead before, and the change :func:`omnibank.leads.service.set_status` made (the events to emit
    after the commit)."""
    before = repository.get(session, viewer, lead_id)
    change = service.set_status(session, lead_id, status, by=by, staff_id=staff_id, now=now, note=note,
                                source=source)  # fmt: skip
    return before, change


def staff_of(session: Session, actor: str, kind: str) -> str | None:
    """The staff member behind a user account (``user:<name>``); None for an API token."""
    if kind != "user":
        return None
    username = actor.removeprefix("user:")
    return session.scalar(select(User.staff_id).where(User.username == username))


@dataclass(frozen=True)
class LeadCounts:
    """The figures of someone's day: their open leads, those past due, and the queue's open leads."""

    mine_open: int
    mine_overdue: int
    queue_open: int


def lead_counts(session: Session, scope: Scope, staff_id: str | None, *, now: datetime) -> LeadCounts:
    """Open leads (new or contacted) assigned to ``staff_id``, how many of them are past due, and the
    unassigned open leads of the customers ``scope`` sees: one query, nothing personal."""
    is_open = Lead.status.in_(OPEN_STATUSES)
    mine = (Lead.owner_staff_id == staff_id) if staff_id is not None else Lead.lead_id.is_(None)
    row = session.execute(
        select(
            func.count(case((is_open & mine, 1))),
            func.count(case((is_open & mine & (Lead.due_at <= now), 1))),
            func.count(case((is_open & Lead.owner_staff_id.is_(None), 1))),
        )
        .select_from(Lead)
        .where(*repository.visibility(session, Viewer(scope=scope)))
    ).one()
    return LeadCounts(int(row[0]), int(row[1]), int(row[2]))
