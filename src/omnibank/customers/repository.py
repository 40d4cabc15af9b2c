"""Every query of customers that a person or an integration makes goes through here, and with it the
access rule, once: a caller sees the customers of one org subtree (or, for whole-bank roles, all)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from omnibank.customers.models import Customer
from omnibank.orgs import repository as orgs_repo
from omnibank.orgs.models import Org

T = TypeVar("T", bound=Any)


@dataclass(frozen=True)
class Scope:
    """The customers a caller may see: every one (``org_ids`` None) or those whose branch is one of
    ``org_ids`` — the subtree under ``root``."""

    org_ids: frozenset[str] | None
    root: str | None = None

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


def scoped(stmt: Select[T], scope: Scope) -> Select[T]:
    """``stmt`` (selecting customers) restricted to the scope: the one place the rule is applied."""
    if scope.org_ids is None:
        return stmt
    return stmt.where(Customer.branch_id.in_(sorted(scope.org_ids)))


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
