"""Queries over the org tree and staff."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from omnibank.orgs.models import Org, Staff


def all_orgs(session: Session) -> dict[str, Org]:
    return {o.org_id: o for o in session.scalars(select(Org))}


def org_ids(session: Session) -> set[str]:
    return set(session.scalars(select(Org.org_id)))


def staff_ids(session: Session) -> set[str]:
    return set(session.scalars(select(Staff.staff_id)))


def subtree_ids(session: Session, org_id: str) -> set[str]:
    """The org and every org below it (materialised path prefix)."""
    root = session.get(Org, org_id)
    if root is None:
        return set()
    return set(session.scalars(select(Org.org_id).where(Org.path.startswith(root.path, autoescape=True))))
