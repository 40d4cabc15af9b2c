"""The contact domain's background job: one round of the outbox (deferred messages decided again, queued
ones handed to their channels, receipts recorded), leased to one worker at a time."""

from __future__ import annotations

from datetime import datetime

from omnibank.config import Settings
from omnibank.worker.registry import Job, JobResult, Limits, register


def dispatch(settings: Settings, now: datetime, _limits: Limits) -> JobResult:
    from omnibank.contact.dispatch import dispatch as dispatch_outbox

    return JobResult({"dispatched": dispatch_outbox(settings, now=now).handed})


register(Job(name="contact.dispatch", run=dispatch))
