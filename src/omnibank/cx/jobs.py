"""CX's background work: the alert rules (``cx.alerts``), each loop, over the events that arrived since the
last pass (:func:`omnibank.cx.alerting.run_alerts`); then the events of the tickets it opened. It runs only
where ``OMNIBANK_CX_ALERTS_FILE`` is set."""

from __future__ import annotations

from datetime import datetime

from omnibank.config import Settings
from omnibank.worker.registry import Job, JobResult, Limits, register


def run(settings: Settings, now: datetime, limits: Limits) -> JobResult:
    from omnibank.cx import alerting
    from omnibank.db import unit_of_work
    from omnibank.service import tickets

    rules = alerting.rules_of(settings)
    if rules is None:
        return JobResult({})
    with unit_of_work(settings) as session:
        got = alerting.run_alerts(session, settings, now=now, rules=rules)
    counts = {k: v for k, v in got.counts().items() if v}
    if got.tickets:
        counts["emitted"] = tickets.emit_pending(settings, now=now).loaded
    return JobResult(counts, busy=got.more)


register(Job(name="cx.alerts", run=run, when=lambda settings: settings.cx_alerts_file is not None))
