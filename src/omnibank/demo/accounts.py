"""The demo bank's console accounts: one per role, each on a real member of the demo's staff (the RM with
the most customers, the manager of that RM's branch, …). Their passwords are new random ones on every run of
the demo (printed once, stored only as argon2 hashes): a demo data home never has a known password."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omnibank.customers.models import Customer
from omnibank.orgs.models import Org, Staff
from omnibank.users import service as users
from omnibank.users.models import User

# (user name, role, staff role to pick from)
ACCOUNTS = (
    ("demo_admin", "admin", "admin"),
    ("demo_campaigns", "campaign_manager", "campaign_manager"),
    ("demo_branch", "branch_manager", "branch_manager"),
    ("demo_rm", "rm", "rm"),
    ("demo_service", "service_agent", "service_agent"),
    ("demo_audit", "auditor", "admin"),
)


@dataclass(frozen=True)
class Account:
    username: str
    role: str
    password: str
    staff_id: str
    org: str  # the org's name


def _busiest_rm(session: Session) -> str | None:
    row = session.execute(
        select(Customer.rm_id, func.count())
        .where(Customer.rm_id.is_not(None))
        .group_by(Customer.rm_id)
        .order_by(func.count().desc(), Customer.rm_id)
        .limit(1)
    ).first()
    return str(row[0]) if row else None


def _pick(session: Session, staff_role: str, near: Staff | None) -> Staff | None:
    """A member of staff in ``staff_role``, as close to ``near`` in the org tree as there is: a branch
    manager and a service agent in the RM's own subtree if possible, climbing towards head office."""
    query = select(Staff).join(Org, Org.org_id == Staff.org_id).where(Staff.role == staff_role)
    org = session.get(Org, near.org_id) if near is not None else None
    for prefix in _ancestors(org.path) if org is not None else []:
        found = session.scalar(query.where(Org.path.startswith(prefix)).order_by(Org.depth, Staff.staff_id))
        if found is not None:
            return found
    return session.scalar(query.order_by(Staff.staff_id))


def _ancestors(path: str) -> list[str]:
    """A materialised path's ancestors, nearest first, the path itself included."""
    parts = [p for p in path.split("/") if p]
    return ["/" + "/".join(parts[:i]) + "/" for i in range(len(parts), 0, -1)]


def ensure_accounts(session: Session, *, now: datetime, actor: str) -> list[Account]:
    """One account per role (created, or given a new password), with its password in clear for printing."""
    rm_id = _busiest_rm(session)
    rm = session.get(Staff, rm_id) if rm_id else None
    made: list[Account] = []
    for username, role, staff_role in ACCOUNTS:
        member = rm if role == "rm" and rm is not None else _pick(session, staff_role, rm)
        if member is None:
            continue
        password = f"Demo-{secrets.token_urlsafe(9)}"
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            users.create_user(session, role=role, password=password, now=now, actor=actor,
                              staff_id=member.staff_id, username=username)  # fmt: skip
        else:
            user.password_hash = users.hash_password(password)
            user.failed_logins = 0
            user.locked_until = None
            user.updated_at = now
        org = session.get(Org, member.org_id)
        made.append(Account(username, role, password, member.staff_id, org.name if org else member.org_id))
    session.flush()
    return made
