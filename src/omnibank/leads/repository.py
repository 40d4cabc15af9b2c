"""Every query of leads a person makes, with the access rule applied here, once.

Two views:

- **scope** (the API): the leads of the customers the caller's scope sees — the rule of
  :mod:`omnibank.customers.repository` (an RM: their own customers and the unassigned ones of their unit; a
  manager: the subtree), applied to the lead's customer as the customer stands now.
- **staff** (``omnibank leads list --staff``): what a member of staff works on — leads they own, the leads
  escalated to them, and the queue (leads with no owner) of the customers they see by the same rule (an RM:
  the unassigned customers of their unit, a team member serving the unit above the team; a branch manager:
  the whole subtree).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.orm import Session

from omnibank.customers.models import Customer
from omnibank.customers.repository import Scope, customer_in_scope, staff_scope
from omnibank.errors import NotFound
from omnibank.kit.crypto import FieldCipher
from omnibank.kit.masking import mask_name, mask_phone
from omnibank.leads.models import LEAD_STATUSES, Lead
from omnibank.leads.service import LeadRead, lead_read
from omnibank.orgs.models import Staff


@dataclass(frozen=True)
class Masked:
    name: str
    phone: str


@dataclass(frozen=True)
class Viewer:
    """Who is looking: a scope of customers, a member of staff, or both (each narrows the other)."""

    scope: Scope | None = None
    staff_id: str | None = None


def _in_scope(scope: Scope) -> ColumnElement[bool]:
    return customer_in_scope(Lead.customer_id, scope)


def staff_member(session: Session, staff_id: str) -> Staff:
    staff = session.get(Staff, staff_id)
    if staff is None:
        raise NotFound(f"no staff member {staff_id} (load staff.csv, or check --staff)")
    return staff


def _staff_view(session: Session, staff_id: str) -> ColumnElement[bool]:
    staff = staff_member(session, staff_id)
    sees = staff_scope(session, org_id=staff.org_id, staff_id=staff_id, role=staff.role)
    return or_(
        Lead.owner_staff_id == staff_id,
        Lead.escalated_to == staff_id,
        and_(Lead.owner_staff_id.is_(None), _in_scope(sees)),
    )


def visibility(session: Session, viewer: Viewer) -> list[ColumnElement[bool]]:
    """The conditions on leads that keep those ``viewer`` sees."""
    found = []
    if viewer.scope is not None:
        found.append(_in_scope(viewer.scope))
    if viewer.staff_id is not None:
        found.append(_staff_view(session, viewer.staff_id))
    return found


def _visible(session: Session, stmt: Select[Lead], viewer: Viewer) -> Select[Lead]:
    return stmt.where(*visibility(session, viewer))


def get(session: Session, viewer: Viewer, lead_id: str) -> LeadRead:
    """The lead if the viewer sees it; else :class:`NotFound` (not there and not visible look alike)."""
    stmt = _visible(session, select(Lead).where(Lead.lead_id == lead_id), viewer)
    lead = session.scalar(stmt.execution_options(populate_existing=True))
    if lead is None:
        raise NotFound(f"no lead {lead_id}")
    return lead_read(lead)


def page(
    session: Session,
    viewer: Viewer,
    *,
    now: datetime,
    status: str | None = None,
    overdue: bool = False,
    owner: str | None = None,
    escalated: bool | None = None,
    after: str | None = None,
    limit: int = 200,
) -> list[LeadRead]:
    """The viewer's leads, soonest due first (then by id). ``overdue``: still new and past due;
    ``owner``: a staff id, or ``"none"`` for the queue; ``after``: the last lead id of the previous page
    (keyset on (due_at, lead_id))."""
    if status is not None and status not in LEAD_STATUSES:
        raise ValueError(f"status must be one of {', '.join(LEAD_STATUSES)}")
    stmt = _visible(session, select(Lead), viewer)
    if status is not None:
        stmt = stmt.where(Lead.status == status)
    if overdue:
        stmt = stmt.where(Lead.status == "new", Lead.due_at <= now)
    if owner == "none":
        stmt = stmt.where(Lead.owner_staff_id.is_(None))
    elif owner is not None:
        stmt = stmt.where(Lead.owner_staff_id == owner)
    if escalated is not None:
        stmt = stmt.where(Lead.escalated_at.is_not(None) if escalated else Lead.escalated_at.is_(None))
    if after is not None:
        last = session.get(Lead, after)
        if last is not None:
            stmt = stmt.where(
                or_(Lead.due_at > last.due_at, and_(Lead.due_at == last.due_at, Lead.lead_id > after))
            )
    stmt = stmt.order_by(Lead.due_at, Lead.lead_id).limit(limit)
    return [lead_read(lead) for lead in session.scalars(stmt.execution_options(populate_existing=True))]


def masked_customers(session: Session, cipher: FieldCipher, customer_ids: Iterable[str]) -> dict[str, Masked]:
    """Masked name and phone of each customer (one query per 500); never plaintext. An erased customer's
    fields no longer exist: shown as such."""
    ids = sorted(set(customer_ids))
    found: dict[str, Masked] = {}
    for i in range(0, len(ids), 500):
        stmt = select(Customer.customer_id, Customer.name_enc, Customer.phone_enc, Customer.erased_at)
        for cid, name_enc, phone_enc, erased in session.execute(
            stmt.where(Customer.customer_id.in_(ids[i : i + 500]))
        ):
            if erased is not None:
                found[cid] = Masked("(erased)", "")
                continue
            name = cipher.decrypt(name_enc, context=f"customers.name:{cid}")
            phone = cipher.decrypt(phone_enc, context=f"customers.phone:{cid}")
            found[cid] = Masked(mask_name(name), mask_phone(phone))
    return found


def list_leads(
    session: Session,
    *,
    now: datetime,
    scope: Scope | None = None,
    staff_id: str | None = None,
    status: str | None = None,
    overdue: bool = False,
    owner: str | None = None,
    limit: int = 200,
) -> list[LeadRead]:
    """:func:`page` with the viewer given as a scope and/or a staff id."""
    viewer = Viewer(scope=scope, staff_id=staff_id)
    return page(session, viewer, now=now, status=status, overdue=overdue, owner=owner, limit=limit)
