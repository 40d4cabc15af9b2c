"""The worker's ``events.compact`` job: the log's closed months compacted every hour
(:mod:`omnibank.events.compact`; a run with nothing to merge lists the log and reads the manifest)."""

from __future__ import annotations

from datetime import datetime, timedelta

from omnibank.config import Settings
from omnibank.worker.registry import Job, JobResult, Limits, register


def run(settings: Settings, now: datetime, limits: Limits) -> JobResult:
    from omnibank.db import unit_of_work
    from omnibank.events.compact import compact

    with unit_of_work(settings) as session:  # reads the consumers' positions only
        report = compact(session, settings, now=now)
    return JobResult({k: v for k, v in report.counts().items() if v})


register(Job(name="events.compact", run=run, every=timedelta(hours=1), lease=timedelta(minutes=5)))
