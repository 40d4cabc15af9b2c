"""The worker's ``surveys.trigger`` job: invitations for the events that trigger a survey, as they arrive."""

from __future__ import annotations

from datetime import datetime

from omnibank.config import Settings
from omnibank.worker.registry import Job, JobResult, Limits, register


def run(settings: Settings, now: datetime, limits: Limits) -> JobResult:
    from omnibank.db import unit_of_work
    from omnibank.surveys.sending import trigger_pass

    with unit_of_work(settings) as session:
        report = trigger_pass(session, settings, now=now)
    return JobResult({k: v for k, v in report.counts().items() if v})


register(Job(name="surveys.trigger", run=run, when=lambda settings: settings.surveys_file is not None))
