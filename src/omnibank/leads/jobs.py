"""The leads domain's background job: leads still new past their due time are escalated to the branch
manager, and the escalation events go to the event log after the commit."""

from __future__ import annotations

from datetime import datetime

from omnibank.config import Settings
from omnibank.worker.registry import Job, JobResult, Limits, register


def escalate(settings: Settings, now: datetime, _limits: Limits) -> JobResult:
    from omnibank.db import unit_of_work
    from omnibank.leads.service import emit_events, escalate_overdue

    with unit_of_work(settings) as session:
        esc = escalate_overdue(session, now=now)
    if esc.events:
        emit_events(settings, esc.events, now=now)
    return JobResult({"escalated": len(esc.escalated)})


register(Job(name="leads.escalate", run=escalate))
