"""The invite codes' background job: the binding pass over the log files loaded since the last one."""

from __future__ import annotations

from datetime import datetime

from omnibank.config import Settings
from omnibank.db import unit_of_work
from omnibank.invites.binding import bind_pass
from omnibank.worker.registry import Job, JobResult, Limits, register


def bind(settings: Settings, now: datetime, _limits: Limits) -> JobResult:
    with unit_of_work(settings) as session:
        report = bind_pass(session, settings, now=now)
    counts = {"files": report.files, "bound": report.bound, "waiting": report.waiting}
    counts.update({f"refused.{k}": v for k, v in report.refused.items()})
    return JobResult({k: v for k, v in counts.items() if v})


register(Job(name="invites.bind", run=bind))
