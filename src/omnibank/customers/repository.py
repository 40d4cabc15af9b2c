"""Every query of customers that a person or an integration makes goes through here, and with it the
access rule, once:

* whole-bank roles (and bank-wide integration tokens) see every customer;
* a manager, a service agent or a token limited to an org sees the customers of one org subtree;
* an RM sees their own customers (``customers.rm_id``, wherever they are held) and the unassigned ones of
  their unit — the queue (管户). Another RM's customers beside them are not theirs to see.

"Not found" and "not visible" look alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, false, func, or_, select
from sqlalchemy.orm import Session

from omnibank.customers.models import Customer
from omnibank.orgs import repository as orgs_repo
from omnibank.orgs.models import Org

T = TypeVar("T", bound=Any)


#: Roles whose holders are assigned customers (``customers.rm_id``): they see their own and the queue of
#: their unit, not the whole subtree (a user's role, or a member of staff's in staff.csv)
ASSIGNED_ROLES = frozenset({"rm", "wealth_manager"})


@dataclass(frozen=True)
class Scope:
    """The customers a caller may see: every one (``org_ids`` None) or those whose branch is one of
    ``org_ids`` — the subtree under ``root``; with ``rm_id`` (an RM), of those only the unassigned ones,
    plus the RM's own customers wherever they are held."""

    org_ids: frozenset[str] | None
    root: str | None = None
    rm_id: str | None = None

    @classmethod
    def whole_bank(cls) -> Scope:
        return cls(None)

    @classmethod
    def nothing(cls) -> Scope:
        return cls(frozenset())

    @property
    def whole(self) -> bool:
        return self.org_ids is None


def scope_root(session: Session, org_id: str | None) -> str | None:
    """The org whose subtree a member of ``org_id`` serves: the org itself, or for a team the unit it belongs
    to. Customers are held by branches and sub-branches (``customers.branch_id``), never by the teams their
    relationship managers sit in, so an RM of team T010101 serves the customers of sub-branch S0101."""
    if org_id is None:
        return None
    org = session.get(Org, org_id)
    if org is not None and org.level == "team" and org.parent_id:
        return org.parent_id
    return org_id


def subtree_scope(session: Session, org_id: str | None) -> Scope:
    """The subtree under ``org_id``; an unknown or missing org sees nothing."""
    if org_id is None:
        return Scope.nothing()
    ids = orgs_repo.subtree_ids(session, org_id)
    return Scope(frozenset(ids), root=org_id if ids else None)


def staff_scope(session: Session, *, org_id: str | None, staff_id: str | None, role: str) -> Scope:
    """What a member of staff sees, by the role they act in: an assigned role (:data:`ASSIGNED_ROLES`) their
    own customers and the unassigned ones of the unit they serve (a team member serves the unit above the
    team: :func:`scope_root`); any other role the unit's whole subtree."""
    unit = subtree_scope(session, scope_root(session, org_id))
    if role in ASSIGNED_ROLES and staff_id is not None:
        return Scope(unit.org_ids, root=unit.root, rm_id=staff_id)
    return unit


@dataclass(frozen=True)
class Within:
    """A scope as the segment language restricts an expression to it (without listing the orgs): the
    subtree under ``org_id``; with ``rm_id``, its unassigned customers and that RM's own. The same rule as
    :func:`scoped`, which ``tests/api/test_scoping.py`` checks customer by customer."""

    org_id: str
    rm_id: str | None = None


def scoped(stmt: Select[T], scope: Scope) -> Select[T]:
    """``stmt`` (selecting customers) restricted to the scope: the one place the rule is applied."""
    if scope.org_ids is None:
        return stmt
    in_unit = Customer.branch_id.in_(sorted(scope.org_ids))
    if scope.rm_id is None:
        return stmt.where(in_unit)
    return stmt.where(or_(Customer.rm_id == scope.rm_id, and_(Customer.rm_id.is_(None), in_unit)))


def customer_in_scope(column: Any, scope: Scope) -> ColumnElement[bool]:
    """A condition on rows of another table whose customer number is ``column`` (a lead's, a ticket's): the
    customer is one the scope sees (the rule of :func:`scoped`)."""
    if scope.whole:
        return column.is_not(None)  # type: ignore[no-any-return]
    if not scope.org_ids and scope.rm_id is None:
        return false()
    return column.in_(scoped(select(Customer.customer_id), scope))  # type: ignore[no-any-return]


def get(session: Session, scope: Scope, customer_id: str) -> Customer | None:
    """The customer if it exists and the scope sees it (else None: not found and not visible look alike)."""
    return session.scalar(scoped(select(Customer).where(Customer.customer_id == customer_id), scope))


def page(session: Session, scope: Scope, *, after: str | None, limit: int) -> list[Customer]:
    """Customers by id after ``after`` (keyset pagination)."""
    stmt = select(Customer).where(Customer.erased_at.is_(None))
    if after:
        stmt = stmt.where(Customer.customer_id > after)
    return list(session.scalars(scoped(stmt, scope).order_by(Customer.customer_id).limit(limit)))


def count(session: Session, scope: Scope) -> int:
    stmt = scoped(select(Customer).where(Customer.erased_at.is_(None)), scope)
    return int(session.scalar(stmt.with_only_columns(func.count()).order_by(None)) or 0)
