"""The CX read layer the CLI, the API and the console share: the alerts and who owns them (责任落实), scoped.

The index (:mod:`omnibank.cx.index`), survey results (:mod:`omnibank.cx.survey_report`), feedback topics
(:mod:`omnibank.cx.feedback`) and funnels (:mod:`omnibank.cx.funnel`) are aggregates without personal data
and are read through their own modules; the funnel takes a viewer. Alerts name customers, so they are read
here, through the customers rule: a viewer with a scope sees the alerts about customers it sees and about
branches in its subtree (an alert about the bank as a whole only bank-wide); a member of staff sees also
every alert they own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import false, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from omnibank.customers.repository import Scope, customer_in_scope
from omnibank.cx.models import CxAlert
from omnibank.leads.repository import Viewer as Viewer

State = Literal["open", "closed", "all"]


@dataclass(frozen=True)
class AlertRead:
    key: str
    rule_id: str
    rule_kind: str
    subject_kind: str
    subject_id: str
    customer_id: str | None
    branch_id: str | None
    owner: str  # a staff id, or queue:<id>
    reason: str
    context: str
    raised_at: datetime
    ticket_id: str | None
    due_at: datetime | None  # when it is to be acted on (the desk's SLA for alerts)
    closed_at: datetime | None
    action: str | None
    closed_by: str | None

    @property
    def status(self) -> str:
        return "closed" if self.closed_at is not None else "open"


def _read(a: CxAlert) -> AlertRead:
    owner = a.owner_staff_id if a.owner_staff_id is not None else f"queue:{a.owner_queue}"
    return AlertRead(
        key=a.key, rule_id=a.rule_id, rule_kind=a.rule_kind, subject_kind=a.subject_kind,
        subject_id=a.subject_id, customer_id=a.customer_id, branch_id=a.branch_id, owner=owner,
        reason=a.reason, context=a.context, raised_at=a.raised_at, ticket_id=a.ticket_id, due_at=a.due_at,
        closed_at=a.closed_at, action=a.action, closed_by=a.closed_by,
    )  # fmt: skip


def _in_scope(scope: Scope) -> ColumnElement[bool]:
    if scope.whole:
        return CxAlert.id.is_not(None)
    branches = CxAlert.branch_id.in_(sorted(scope.org_ids or ())) if scope.org_ids else false()
    return or_(
        CxAlert.customer_id.is_not(None) & customer_in_scope(CxAlert.customer_id, scope),
        CxAlert.customer_id.is_(None) & (CxAlert.subject_kind == "branch") & branches,
    )


def visibility(viewer: Viewer) -> list[ColumnElement[bool]]:
    found: list[ColumnElement[bool]] = []
    if viewer.scope is not None:
        found.append(_in_scope(viewer.scope))
    if viewer.staff_id is not None:
        mine = CxAlert.owner_staff_id == viewer.staff_id
        found = [or_(mine, *found)] if found else [mine]
    return found


def alerts(
    session: Session,
    viewer: Viewer,
    *,
    state: State = "open",
    rule: str | None = None,
    owner: str | None = None,
    limit: int = 200,
) -> list[AlertRead]:
    """Alerts the viewer may see, newest first: open (not yet acted on), closed, or all."""
    stmt = select(CxAlert).where(*visibility(viewer))
    if state == "open":
        stmt = stmt.where(CxAlert.closed_at.is_(None))
    elif state == "closed":
        stmt = stmt.where(CxAlert.closed_at.is_not(None))
    if rule is not None:
        stmt = stmt.where(CxAlert.rule_id == rule)
    if owner is not None:
        stmt = stmt.where(CxAlert.owner_staff_id == owner)
    rows: Sequence[CxAlert] = session.scalars(
        stmt.order_by(CxAlert.raised_at.desc(), CxAlert.id.desc()).limit(max(1, min(limit, 5000)))
    ).all()
    return [_read(a) for a in rows]


def alert_counts(session: Session, viewer: Viewer) -> dict[str, int]:
    """Open and closed alerts the viewer may see (the console's home figure)."""
    rows = session.scalars(select(CxAlert.closed_at).where(*visibility(viewer))).all()
    closed = sum(1 for c in rows if c is not None)
    return {"open": len(rows) - closed, "closed": closed}


__all__ = ["AlertRead", "State", "Viewer", "alert_counts", "alerts", "visibility"]
