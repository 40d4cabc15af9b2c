"""The journeys' background jobs, in the order one loop of the worker has always run them: the event log
applied to every active journey, segment triggers whose schedule came, then due steps.

Due steps run side by side on several workers (not exclusive): entries are claimed with ``FOR UPDATE SKIP
LOCKED``, so two workers never hold one entry, and that is where two workers double the steps a second
(``benchmarks/bench_journeys.py``). Applying the log and segment triggers are leased to one worker at a time:
they lock a journey's row per file or per tick, so a second worker would only wait.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from omnibank.config import Settings
from omnibank.journeys import runtime
from omnibank.worker.registry import Job, JobResult, Limits, register


def counts(report: runtime.WorkReport) -> dict[str, int]:
    """A report's figures as the worker counts them (``sends`` as ``sends.send``, ``sends.defer``, …)."""
    out: dict[str, int] = {}
    for name, value in vars(report).items():
        if isinstance(value, Counter):
            out.update({f"{name}.{k}": v for k, v in value.items()})
        elif value:
            out[name] = value
    return out


def apply_log(settings: Settings, now: datetime, _limits: Limits) -> JobResult:
    report = runtime.WorkReport()
    runtime.apply_log(settings, now=now, report=report)
    return JobResult(counts(report), busy=report.files > 0)


def segment_triggers(settings: Settings, now: datetime, _limits: Limits) -> JobResult:
    report = runtime.WorkReport()
    runtime.tick_segments(settings, now=now, report=report)
    return JobResult(counts(report))


def due_steps(settings: Settings, now: datetime, limits: Limits) -> JobResult:
    """Due entries in batches until none are left (or ``max_batches``, or the worker stops)."""
    report = runtime.WorkReport()
    n = 0
    while limits.max_batches is None or n < limits.max_batches:
        n += 1
        if runtime.run_due(settings, now=now, batch=limits.batch, report=report) < limits.batch:
            break
        if limits.stopping():
            break
    return JobResult(counts(report), busy=report.claimed > 0)


register(Job(name="journeys.apply_log", run=apply_log))
register(Job(name="journeys.segment_triggers", run=segment_triggers))
register(Job(name="journeys.due_steps", run=due_steps, exclusive=False))
