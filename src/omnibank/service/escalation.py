"""Acting on the clocks: warn the owner at 80 % of a target, escalate to the owner's manager at a breach and
one level higher at 150 %; alert a queue's manager when its inflow surges. Flushes only; the caller (the
worker's ``service.escalate`` job, or ``omnibank tickets escalate``) commits.

**Who hears.** The manager of a member of staff is the branch manager at their org or the nearest one above
it (as for leads); a queue's manager is the one of the queue's org. ``warn`` goes to the owner (a queue-owned
ticket: to the queue's manager); ``breach`` to the owner's manager; ``breach2`` to the manager above that
one (the nearest branch manager strictly above the first manager's org). Where nobody is found the
escalation is still recorded, with no one to tell, and counted as ``unassigned``.

**Once.** A level of a target is acted on once per round of that target (``ticket_escalations``' unique
key: ticket, target, level, the round's due time), so running the pass twice, or two workers, tells nobody
twice. The pass reads only the tickets whose cached next level is due (``sla_next_at <= now``, one indexed
query) and recomputes their clocks from the history before acting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omnibank.leads.service import branch_managers
from omnibank.orgs.models import Org, Staff
from omnibank.service.models import OPEN_STATUSES, SurgeAlert, Ticket, TicketEscalation
from omnibank.service.routing import baseline_window, surge_check
from omnibank.service.sla import LEVELS
from omnibank.service.tickets import Desk, add_history, refresh_sla

LEVEL_WORDS = {"warn": "80%", "breach": "breach", "breach2": "150%"}


@dataclass
class EscalationReport:
    checked: int = 0
    escalated: dict[str, int] = field(default_factory=lambda: {level: 0 for level in LEVELS})
    unassigned: int = 0
    errors: int = 0  # tickets whose clocks could not be computed (e.g. no holiday data for the year)

    def counts(self) -> dict[str, int]:
        return {
            "checked": self.checked,
            **self.escalated,
            "unassigned": self.unassigned,
            "errors": self.errors,
        }


class Managers:
    """Branch managers up the org tree, read once per pass."""

    def __init__(self, session: Session):
        self.parent: dict[str, str | None] = dict(session.execute(select(Org.org_id, Org.parent_id)).all())
        self.staff_org: dict[str, str] = dict(session.execute(select(Staff.staff_id, Staff.org_id)).all())
        self._at = branch_managers(session)

    def of_org(self, org_id: str | None) -> str | None:
        return self._at.get(org_id) if org_id else None

    def of_staff(self, staff_id: str) -> str | None:
        """The manager of a member of staff (never themself: a manager's manager is the one above)."""
        org = self.staff_org.get(staff_id)
        manager = self.of_org(org)
        if manager == staff_id:
            return self.above(staff_id)
        return manager

    def above(self, manager_id: str) -> str | None:
        """The nearest branch manager strictly above ``manager_id``'s org."""
        org = self.staff_org.get(manager_id)
        up = self.parent.get(org) if org else None
        found = self.of_org(up)
        return found if found != manager_id else None


def _recipient(desk: Desk, managers: Managers, ticket: Ticket, level: str) -> str | None:
    if ticket.owner_staff_id is not None:
        first = managers.of_staff(ticket.owner_staff_id)
        if level == "warn":
            return ticket.owner_staff_id
    else:
        queue = desk.routing.queue(ticket.owner_queue or ticket.queue)
        first = managers.of_org(queue.org if queue else None)
        if level == "warn":
            return first
    if level == "breach":
        return first
    return managers.above(first) if first else None


def escalate_due(
    session: Session, desk: Desk, *, now: datetime, limit: int = 1000, managers: Managers | None = None
) -> EscalationReport:
    """Act on every level reached by the tickets whose next level is due (see the module's docstring)."""
    report = EscalationReport()
    due = list(
        session.scalars(
            select(Ticket)
            .where(Ticket.status.in_(OPEN_STATUSES), Ticket.sla_next_at <= now)
            .order_by(Ticket.sla_next_at, Ticket.ticket_id)
            .limit(limit)
        )
    )
    if not due:
        return report
    managers = managers or Managers(session)
    for ticket in due:
        report.checked += 1
        states = refresh_sla(session, desk, ticket, now=now)
        if not states:
            report.errors += 1
            continue
        done = {
            (e.target, e.level, e.round_due)
            for e in session.scalars(
                select(TicketEscalation).where(TicketEscalation.ticket_id == ticket.ticket_id)
            )
        }
        for target, state in states.items():
            for level, reached_at in state.reached.items():
                if (target, level, state.due_at) in done:
                    continue
                to = _recipient(desk, managers, ticket, level)
                session.add(
                    TicketEscalation(ticket_id=ticket.ticket_id, target=target, level=level,
                                     round_due=state.due_at, reached_at=reached_at, to_staff_id=to, at=now)
                )  # fmt: skip
                add_history(
                    session, ticket, "escalated", now, by="system:escalation", from_status=ticket.status,
                    staff_id=to, detail=f"{target} {LEVEL_WORDS[level]}",
                )  # fmt: skip
                report.escalated[level] += 1
                if to is None:
                    report.unassigned += 1
    session.flush()
    return report


# ----------------------------------------------------------------------------------------------- surges


@dataclass(frozen=True)
class SurgeRead:
    queue: str
    hour: datetime
    inflow: int
    usual_per_hour: str
    to_staff_id: str | None
    created: bool


def check_surges(session: Session, desk: Desk, *, now: datetime) -> list[SurgeRead]:
    """Alert each queue's manager whose inflow in the hour before ``now`` surges over its usual rate, once
    for that hour (the hour is ``now`` floored to the hour)."""
    surge = desk.routing.surge
    since, hour_start, end = baseline_window(surge, now)
    last_hour = _counts(session, hour_start, end)
    if not last_hour:
        return []
    baseline = _counts(session, since, hour_start)
    managers = Managers(session)
    hour = now.replace(minute=0, second=0, microsecond=0)
    found = []
    for queue_id, inflow in sorted(last_hour.items()):
        check = surge_check(surge, queue_id, last_hour=inflow, baseline=baseline.get(queue_id, 0))
        if not check.surging:
            continue
        queue = desk.routing.queue(queue_id)
        to = managers.of_org(queue.org if queue else None)
        exists = session.scalar(
            select(SurgeAlert.id).where(SurgeAlert.queue == queue_id, SurgeAlert.hour == hour)
        )
        if exists is None:
            usual = str(check.usual_per_hour)
            alert = SurgeAlert(
                queue=queue_id, hour=hour, inflow=inflow, usual_per_hour=usual, to_staff_id=to, at=now
            )
            session.add(alert)
        found.append(SurgeRead(queue_id, hour, inflow, str(check.usual_per_hour), to, exists is None))
    session.flush()
    return found


def _counts(session: Session, start: datetime, end: datetime) -> dict[str, int]:
    rows = session.execute(
        select(Ticket.queue, func.count())
        .where(Ticket.opened_at >= start, Ticket.opened_at < end)
        .group_by(Ticket.queue)
    ).all()
    return {q: int(n) for q, n in rows}


def surge_alerts(session: Session, *, since: datetime) -> list[SurgeAlert]:
    return list(session.scalars(select(SurgeAlert).where(SurgeAlert.at >= since).order_by(SurgeAlert.at)))
