"""Per-job metrics of one worker process: runs, failures, skips, the last run's duration and error kind.

Kept in memory (``omnibank worker --once`` prints them); the store keeps the last run of each job across
workers (``worker_leases``, ``omnibank worker status``). Errors are known by their kind (the exception's
class), never by their message, which may carry a customer's data.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


def error_kind(exc: BaseException) -> str:
    """``module.Class`` of an error: enough to tell errors apart, nothing of what they say."""
    cls = type(exc)
    module = cls.__module__
    name = cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
    return name[-128:]


@dataclass
class JobMetrics:
    runs: int = 0
    failures: int = 0
    skipped: int = 0  # held by another worker, not due yet, or backing off
    last_duration_ms: int | None = None
    last_error: str | None = None  # the kind of the last run's error (None: it succeeded)
    counts: Counter[str] = field(default_factory=Counter)


class Metrics:
    """Metrics by job name, in the order the jobs first ran."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobMetrics] = {}

    def of(self, name: str) -> JobMetrics:
        m = self.jobs.get(name)
        if m is None:
            m = self.jobs[name] = JobMetrics()
        return m

    def ran(self, name: str, *, duration_ms: int, error: str | None, counts: Counter[str]) -> None:
        m = self.of(name)
        m.runs += 1
        m.failures += error is not None
        m.last_duration_ms = duration_ms
        m.last_error = error
        m.counts.update(counts)

    def skipped(self, name: str) -> None:
        self.of(name).skipped += 1
