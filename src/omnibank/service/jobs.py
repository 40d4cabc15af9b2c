"""The service desk's background work, one job each loop (``service.desk``): tickets from the log's
``complaint.filed`` and ``service.request`` events, queue-owned tickets handed to agents as they come on
shift, SLA warnings and escalations, tickets about a benefit sent to its supplier (a signed webhook), surge
alerts, then the ticket events still to emit. Each step commits on
its own, so a failure in one leaves the others' work done; the worker reports it and runs again."""

from __future__ import annotations

from datetime import datetime

from omnibank.config import Settings
from omnibank.worker.registry import Job, JobResult, Limits, register


def desk_pass(settings: Settings, now: datetime, limits: Limits | None = None) -> dict[str, int]:
    from omnibank.db import unit_of_work
    from omnibank.security import get_cipher
    from omnibank.service import escalation, intake, suppliers, tickets

    batch = (limits or Limits()).batch
    counts: dict[str, int] = {}
    with unit_of_work(settings) as session:
        desk = tickets.desk_of(session, settings)
        got = intake.intake_pass(session, settings, desk, get_cipher(settings), now=now)
    counts["opened"] = got.opened
    with unit_of_work(settings) as session:
        counts["assigned"] = len(tickets.assign_waiting(session, desk, now=now, limit=batch))
    with unit_of_work(settings) as session:
        esc = escalation.escalate_due(session, desk, now=now, limit=batch)
    counts.update({f"sla_{k}": v for k, v in esc.counts().items() if k != "checked"})
    with unit_of_work(settings) as session:
        told = suppliers.notify_suppliers(session, settings, desk, now=now, limit=batch)
    counts["suppliers_notified"] = len(told.notified)
    counts["suppliers_failed"] = told.failed
    with unit_of_work(settings) as session:
        counts["surges"] = sum(1 for s in escalation.check_surges(session, desk, now=now) if s.created)
    counts["emitted"] = tickets.emit_pending(settings, now=now).loaded
    return counts


def run(settings: Settings, now: datetime, limits: Limits) -> JobResult:
    counts = desk_pass(settings, now, limits)
    busy = counts["assigned"] >= limits.batch or counts.get("sla_warn", 0) >= limits.batch
    return JobResult({k: v for k, v in counts.items() if v}, busy=busy)


register(Job(name="service.desk", run=run))
