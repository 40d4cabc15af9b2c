"""The read layer of the staff marketing tool that the CLI, the API and the console share: codes, the
customers a code bound (masked, audited), refusals; the report and leaderboards are
:mod:`omnibank.invites.stats`. All scoped by :class:`~omnibank.invites.stats.Reach`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from omnibank.audit import service as audit
from omnibank.customers.repository import ASSIGNED_ROLES
from omnibank.invites.models import InviteBinding, InviteCode, InviteRefusal
from omnibank.invites.stats import Reach
from omnibank.kit.crypto import FieldCipher
from omnibank.leads.repository import masked_customers
from omnibank.orgs.models import Org, Staff


def reach_of(session: Session, *, whole_bank: bool, org_id: str | None, role: str | None,
             staff_id: str | None) -> Reach:  # fmt: skip
    """What a person sees of the figures: the bank (whole-bank roles), their own code's (an RM or a wealth
    manager), or their org's subtree (a team member: the sub-branch's, as for customers)."""
    if whole_bank:
        return Reach.whole_bank()
    if role in ASSIGNED_ROLES:
        return Reach(staff_id=staff_id or "\x00")  # an RM without a staff id sees nothing
    from omnibank.customers.repository import scope_root

    root = scope_root(session, org_id)
    org = session.get(Org, root) if root else None
    if org is None:
        return Reach(org_path="\x00")  # nothing
    return Reach(org_path=org.path)


@dataclass(frozen=True)
class CodeRow:
    staff_id: str
    org_id: str
    role: str
    code: str | None  # the live code
    issued_at: datetime | None
    revoked: int  # codes of theirs revoked so far
    left_at: datetime | None


def codes(session: Session, reach: Reach, *, org_id: str | None = None) -> list[CodeRow]:
    """Every member of staff within reach with their live code (None: none yet, or left)."""
    stmt = select(Staff, Org.path).join(Org, Org.org_id == Staff.org_id).order_by(Staff.staff_id)
    if reach.org_path is not None:
        stmt = stmt.where(Org.path.startswith(reach.org_path, autoescape=True))
    if reach.staff_id is not None:
        stmt = stmt.where(Staff.staff_id == reach.staff_id)
    if org_id is not None:
        org = session.get(Org, org_id)
        stmt = stmt.where(Org.path.startswith(org.path if org else "\x00", autoescape=True))
    staff = [s for s, _ in session.execute(stmt)]
    ids = [s.staff_id for s in staff]
    live: dict[str, InviteCode] = {}
    revoked: dict[str, int] = {}
    for c in session.scalars(select(InviteCode).where(InviteCode.staff_id.in_(ids))):
        if c.revoked_at is None:
            live[c.staff_id] = c
        else:
            revoked[c.staff_id] = revoked.get(c.staff_id, 0) + 1
    return [
        CodeRow(s.staff_id, s.org_id, s.role, c.code if c else None, c.issued_at if c else None,
                revoked.get(s.staff_id, 0), s.left_at)
        for s in staff
        for c in [live.get(s.staff_id)]
    ]  # fmt: skip


@dataclass(frozen=True)
class BoundCustomer:
    customer_id: str
    name: str  # masked
    phone: str  # masked
    staff_id: str
    code: str
    channel: str | None
    bound_at: datetime


def bound_customers(
    session: Session,
    cipher: FieldCipher,
    reach: Reach,
    *,
    actor: str,
    source: str = "cli",
    staff_id: str | None = None,
    limit: int = 200,
    now: datetime | None = None,
) -> list[BoundCustomer]:
    """The customers bound within reach (of one member of staff), latest first: names and phones masked,
    the read audited."""
    stmt = (
        select(InviteBinding)
        .where(*reach.where())
        .order_by(InviteBinding.bound_at.desc(), InviteBinding.customer_id)
        .limit(limit)
    )
    if staff_id is not None:
        stmt = stmt.where(InviteBinding.staff_id == staff_id)
    rows = list(session.scalars(stmt))
    masked = masked_customers(session, cipher, [b.customer_id for b in rows])
    found = [
        BoundCustomer(b.customer_id, m.name, m.phone, b.staff_id, b.code, b.channel, b.bound_at)
        for b in rows
        for m in [masked.get(b.customer_id)]
        if m is not None
    ]  # fmt: skip
    audit.record(session, actor=actor, action="invites.bound_customers", subject_type="staff",
                 subject_id=staff_id, detail={"rows": len(found), "org_path": reach.org_path}, source=source,
                 at=now)  # fmt: skip
    return found


@dataclass(frozen=True)
class RefusalRow:
    event_id: str
    customer_id: str
    code: str
    staff_id: str | None
    reason: str
    channel: str | None
    at: datetime


def refusals(
    session: Session,
    reach: Reach,
    *,
    actor: str,
    source: str = "cli",
    reason: str | None = None,
    limit: int = 200,
    now: datetime | None = None,
) -> list[RefusalRow]:
    """Refused bindings, latest first (codes held within reach; unknown codes only for the whole bank). A
    list of customers: the read is audited."""
    stmt = select(InviteRefusal).order_by(InviteRefusal.at.desc(), InviteRefusal.event_id).limit(limit)
    if reason is not None:
        stmt = stmt.where(InviteRefusal.reason == reason)
    if reach.staff_id is not None:
        stmt = stmt.where(InviteRefusal.staff_id == reach.staff_id)
    elif reach.org_path is not None:
        inside = select(Staff.staff_id).join(Org, Org.org_id == Staff.org_id)
        stmt = stmt.where(InviteRefusal.staff_id.in_(inside.where(Org.path.startswith(reach.org_path))))
    found = [
        RefusalRow(r.event_id, r.customer_id, r.code, r.staff_id, r.reason, r.channel, r.at)
        for r in session.scalars(stmt)
    ]
    audit.record(session, actor=actor, action="invites.refusals", subject_type="org", subject_id=None,
                 detail={"rows": len(found), "reason": reason, "org_path": reach.org_path,
                         "staff_id": reach.staff_id}, source=source, at=now)  # fmt: skip
    return found
